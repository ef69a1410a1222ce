package main

import (
	"encoding/binary"
	"net/netip"
)

// synLen is the size of one SYN: a 20-byte IPv4 header and a 24-byte TCP header (with MSS).
const synLen = 20 + 24

// mss is the MSS option every SYN carries, as a client on a 1500-byte Ethernet would.
const mss = 1460

// buildSyn writes an IPv4 TCP SYN into pkt (synLen bytes), checksums included. With
// IP_HDRINCL the kernel keeps a non-zero IP id and source as written (it recomputes only the
// IP checksum and total length, to the same values).
func buildSyn(pkt []byte, src, dst netip.Addr, sport, dport uint16, seq uint32, id uint16) {
	_ = pkt[synLen-1]
	s, d := src.As4(), dst.As4()
	ip := pkt[:20]
	ip[0] = 0x45 // version 4, header of 5 words
	ip[1] = 0
	binary.BigEndian.PutUint16(ip[2:], synLen)
	binary.BigEndian.PutUint16(ip[4:], id|1)   // never 0: the kernel would pick its own
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // don't fragment
	ip[8] = 64                                 // TTL
	ip[9] = 6                                  // TCP
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))

	tcp := pkt[20:synLen]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], 0) // ack
	tcp[12] = 6 << 4                       // data offset: 6 words
	tcp[13] = 0x02                         // SYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	tcp[16], tcp[17] = 0, 0 // checksum
	tcp[18], tcp[19] = 0, 0 // urgent pointer
	tcp[20], tcp[21] = 2, 4 // MSS option
	binary.BigEndian.PutUint16(tcp[22:], mss)
	// Pseudo-header: source, destination, protocol and TCP length.
	pseudo := sum16(s[:]) + sum16(d[:]) + 6 + uint32(len(tcp))
	binary.BigEndian.PutUint16(tcp[16:], checksum(tcp, pseudo))
}

// sum16 adds b as big-endian 16-bit words (b has an even length).
func sum16(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	return s
}

// checksum is the Internet checksum (RFC 1071) of b, starting from the partial sum initial.
func checksum(b []byte, initial uint32) uint16 {
	s := initial + sum16(b)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
