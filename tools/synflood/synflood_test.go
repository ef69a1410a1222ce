package main

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

func TestBenchRangeOnly(t *testing.T) {
	for _, a := range []string{"198.18.0.0", "198.18.0.1", "198.18.17.2", "198.19.8.1", "198.19.255.255"} {
		if !inBenchRange(netip.MustParseAddr(a)) {
			t.Errorf("%s is in 198.18.0.0/15 but was refused", a)
		}
	}
	for _, a := range []string{
		"198.17.255.255", "198.20.0.0", "10.0.0.1", "127.0.0.1", "192.168.1.1", "8.8.8.8",
		"0.0.0.0", "255.255.255.255", "::1", "2001:db8::1", "::ffff:198.18.0.1", "64:ff9b::c612:1",
	} {
		if inBenchRange(netip.MustParseAddr(a)) {
			t.Errorf("%s is outside 198.18.0.0/15 but was accepted", a)
		}
	}
}

func TestParseConfigRefusesAddressesOutsideTheRange(t *testing.T) {
	cases := []struct{ src, dst, want string }{
		{"10.0.0.1", "198.18.1.2", "--src 10.0.0.1 is outside"},
		{"198.18.1.1", "10.0.0.1", "--dst 10.0.0.1 is outside"},
		{"198.18.1.1", "198.20.0.1", "--dst 198.20.0.1 is outside"},
		{"198.18.1.1", "::1", "--dst ::1 is outside"},
		{"198.18.1.1", "example.com", "not an IP address"},
		{"198.18.1.1", "198.18.1.1", "both"},
	}
	for _, c := range cases {
		_, err := parseConfig(c.src, c.dst, 80, 0, 10, 1000)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseConfig(%s, %s): got %v, want an error with %q", c.src, c.dst, err, c.want)
		}
	}
}

func TestParseConfigLimits(t *testing.T) {
	ok := func(port, rate, dur int, count int64) error {
		_, err := parseConfig("198.19.8.1", "198.19.8.2", port, rate, dur, count)
		return err
	}
	if err := ok(8080, 0, MaxDuration, MaxCount); err != nil {
		t.Fatalf("the largest bounds were refused: %v", err)
	}
	for name, err := range map[string]error{
		"duration 0":     ok(8080, 0, 0, 10),
		"duration > max": ok(8080, 0, MaxDuration+1, 10),
		"count 0":        ok(8080, 0, 10, 0),
		"count > max":    ok(8080, 0, 10, MaxCount+1),
		"negative rate":  ok(8080, -1, 10, 10),
		"port 0":         ok(0, 0, 10, 10),
		"port > 65535":   ok(65536, 0, 10, 10),
	} {
		if err == nil {
			t.Errorf("%s was accepted", name)
		}
	}
}

func TestBuildSyn(t *testing.T) {
	pkt := make([]byte, synLen)
	src, dst := netip.MustParseAddr("198.19.8.1"), netip.MustParseAddr("198.19.8.2")
	buildSyn(pkt, src, dst, 40000, 8080, 0xdeadbeef, 0)
	if pkt[0] != 0x45 || pkt[9] != 6 || binary.BigEndian.Uint16(pkt[2:]) != synLen {
		t.Fatalf("not an IPv4 TCP packet of %d bytes: % x", synLen, pkt[:20])
	}
	if binary.BigEndian.Uint16(pkt[4:]) == 0 {
		t.Error("IP id is 0: the kernel would replace it")
	}
	if got := netip.AddrFrom4([4]byte(pkt[12:16])); got != src {
		t.Errorf("source %s, want %s", got, src)
	}
	if got := netip.AddrFrom4([4]byte(pkt[16:20])); got != dst {
		t.Errorf("destination %s, want %s", got, dst)
	}
	if checksum(pkt[:20], 0) != 0 {
		t.Error("IP header checksum does not verify")
	}
	tcp := pkt[20:]
	if binary.BigEndian.Uint16(tcp[0:]) != 40000 || binary.BigEndian.Uint16(tcp[2:]) != 8080 {
		t.Errorf("ports %d -> %d", binary.BigEndian.Uint16(tcp[0:]), binary.BigEndian.Uint16(tcp[2:]))
	}
	if tcp[13] != 0x02 {
		t.Errorf("flags %#x, want SYN only", tcp[13])
	}
	if binary.BigEndian.Uint32(tcp[4:]) != 0xdeadbeef {
		t.Error("sequence number not as given")
	}
	if tcp[12]>>4 != 6 || tcp[20] != 2 || tcp[21] != 4 || binary.BigEndian.Uint16(tcp[22:]) != mss {
		t.Errorf("TCP header length or MSS option wrong: % x", tcp)
	}
	s, d := src.As4(), dst.As4()
	pseudo := sum16(s[:]) + sum16(d[:]) + 6 + uint32(len(tcp))
	if checksum(tcp, pseudo) != 0 {
		t.Error("TCP checksum does not verify")
	}
}

func TestOwnAddress(t *testing.T) {
	if own, err := ownAddress(netip.MustParseAddr("127.0.0.1")); err != nil || !own {
		t.Errorf("127.0.0.1 is not found as this host's address: %v %v", own, err)
	}
	if own, _ := ownAddress(netip.MustParseAddr("198.19.254.254")); own {
		t.Error("198.19.254.254 is taken for this host's address")
	}
}
