package main

// Raw rtnetlink for the two things cilium/ebpf does not do: reading what XDP the kernel reports
// on an interface (IFLA_XDP with its per-mode program ids) and attaching or detaching a program
// the pre-bpf_link way (IFLA_XDP_FD with XDP_FLAGS_*, IFLA_XDP_EXPECTED_FD). Errors carry the
// kernel's extended-ack message ("MTU too large to enable XDP"), which the bpf() syscall never
// gives, so the loader can say why a driver refused.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// XDP attach flags (include/uapi/linux/if_link.h).
const (
	xdpFlagsUpdateIfNoExist = 1 << 0
	xdpFlagsSkbMode         = 1 << 1
	xdpFlagsDrvMode         = 1 << 2
	xdpFlagsHwMode          = 1 << 3
	xdpFlagsReplace         = 1 << 4
)

// IFLA_XDP nested attributes and IFLA_XDP_ATTACHED values.
const (
	iflaXdpFd         = 1
	iflaXdpAttached   = 2
	iflaXdpFlags      = 3
	iflaXdpProgID     = 4
	iflaXdpDrvProgID  = 5
	iflaXdpSkbProgID  = 6
	iflaXdpHwProgID   = 7
	iflaXdpExpectedFd = 8

	xdpAttachedNone  = 0
	xdpAttachedDrv   = 1
	xdpAttachedSkb   = 2
	xdpAttachedHw    = 3
	xdpAttachedMulti = 4
)

// Extended-ack attribute holding the kernel's message (NLMSGERR_ATTR_MSG).
const nlmsgerrAttrMsg = 1

// xdpState is what the kernel reports about XDP on one interface.
type xdpState struct {
	Attached uint8             // IFLA_XDP_ATTACHED: none, drv, skb, hw or multi
	Progs    map[string]uint32 // mode ("native", "generic", "hw") → program id
	MTU      uint32
}

// netlinkError is a failed rtnetlink request: the errno and the kernel's extack message.
type netlinkError struct {
	Errno syscall.Errno
	Msg   string
}

func (e *netlinkError) Error() string {
	if e.Msg != "" {
		return fmt.Sprintf("%s (%s)", e.Msg, e.Errno.Error())
	}
	return e.Errno.Error()
}

func (e *netlinkError) Unwrap() error { return e.Errno }

// rtAttr appends one netlink attribute (4-byte header, payload, padding to 4).
func rtAttr(b []byte, typ uint16, payload []byte) []byte {
	l := 4 + len(payload)
	hdr := make([]byte, 4)
	binary.NativeEndian.PutUint16(hdr[0:2], uint16(l))
	binary.NativeEndian.PutUint16(hdr[2:4], typ)
	b = append(b, hdr...)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u32(v uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return b
}

// parseAttrs splits a run of netlink attributes into type → payload (the nested flag and
// byte-order flag are masked off the type). Truncated input ends the walk.
func parseAttrs(b []byte) map[uint16][]byte {
	out := map[uint16][]byte{}
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < 4 || l > len(b) {
			break
		}
		out[typ] = b[4:l]
		adv := (l + 3) &^ 3
		if adv > len(b) {
			adv = len(b)
		}
		b = b[adv:]
	}
	return out
}

// parseXdp reads an IFLA_XDP payload. The kernel sends one per-mode id attribute for each mode
// with a program, and IFLA_XDP_PROG_ID as well unless several modes are attached.
func parseXdp(payload []byte) xdpState {
	st := xdpState{Progs: map[string]uint32{}}
	a := parseAttrs(payload)
	if v, ok := a[iflaXdpAttached]; ok && len(v) >= 1 {
		st.Attached = v[0]
	}
	for attr, mode := range map[uint16]string{iflaXdpDrvProgID: "native", iflaXdpSkbProgID: "generic", iflaXdpHwProgID: "hw"} {
		if v, ok := a[attr]; ok && len(v) >= 4 {
			st.Progs[mode] = binary.NativeEndian.Uint32(v)
		}
	}
	// Kernels before 4.19 report only IFLA_XDP_PROG_ID and the single mode.
	if v, ok := a[iflaXdpProgID]; ok && len(v) >= 4 && len(st.Progs) == 0 {
		if m := attachedMode(st.Attached); m != "" {
			st.Progs[m] = binary.NativeEndian.Uint32(v)
		}
	}
	return st
}

// attachedMode names a single IFLA_XDP_ATTACHED mode ("" for none or multi).
func attachedMode(a uint8) string {
	switch a {
	case xdpAttachedDrv:
		return "native"
	case xdpAttachedSkb:
		return "generic"
	case xdpAttachedHw:
		return "hw"
	}
	return ""
}

// parseLinkMsg reads an RTM_NEWLINK message body (ifinfomsg + attributes).
func parseLinkMsg(body []byte) (xdpState, error) {
	if len(body) < unix.SizeofIfInfomsg {
		return xdpState{}, errors.New("short RTM_NEWLINK message")
	}
	a := parseAttrs(body[unix.SizeofIfInfomsg:])
	st := xdpState{Progs: map[string]uint32{}}
	if v, ok := a[unix.IFLA_XDP]; ok {
		st = parseXdp(v)
	}
	if v, ok := a[unix.IFLA_MTU]; ok && len(v) >= 4 {
		st.MTU = binary.NativeEndian.Uint32(v)
	}
	return st, nil
}

// parseAck reads an NLMSG_ERROR body: the errno (0 = success) and the extack message, if any.
// With NETLINK_CAP_ACK the echoed request is only its 16-byte header.
func parseAck(flags uint16, body []byte) error {
	if len(body) < 4 {
		return errors.New("short netlink ack")
	}
	errno := -int32(binary.NativeEndian.Uint32(body[0:4]))
	if errno == 0 {
		return nil
	}
	e := &netlinkError{Errno: syscall.Errno(errno)}
	if flags&unix.NLM_F_ACK_TLVS != 0 && len(body) >= 4+unix.SizeofNlMsghdr {
		rest := body[4:]
		if flags&unix.NLM_F_CAPPED != 0 {
			rest = rest[unix.SizeofNlMsghdr:]
		} else {
			l := int(binary.NativeEndian.Uint32(rest[0:4]))
			if l > len(rest) {
				l = len(rest)
			}
			rest = rest[(l+3)&^3:]
		}
		if m, ok := parseAttrs(rest)[nlmsgerrAttrMsg]; ok {
			e.Msg = string(trimNul(m))
		}
	}
	return e
}

func trimNul(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// rtnl sends one request and returns the body of the answer of type want (or nil when the
// answer is a bare ack).
func rtnl(msgType uint16, flags uint16, ifindex int, attrs []byte, want uint16) ([]byte, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, os.NewSyscallError("bind", err)
	}

	ifi := make([]byte, unix.SizeofIfInfomsg) // family AF_UNSPEC, index, no flags
	binary.NativeEndian.PutUint32(ifi[4:8], uint32(ifindex))
	body := append(ifi, attrs...)
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	binary.NativeEndian.PutUint32(msg[0:4], uint32(unix.SizeofNlMsghdr+len(body)))
	binary.NativeEndian.PutUint16(msg[4:6], msgType)
	binary.NativeEndian.PutUint16(msg[6:8], flags|unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(msg[8:12], 1) // sequence number
	msg = append(msg, body...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, os.NewSyscallError("sendto", err)
	}

	buf := make([]byte, 65536)
	var got []byte
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, os.NewSyscallError("recvfrom", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if err := parseAck(m.Header.Flags, m.Data); err != nil {
					return nil, err
				}
				return got, nil
			case want:
				got = append([]byte(nil), m.Data...)
				if flags&unix.NLM_F_ACK == 0 {
					return got, nil
				}
			}
		}
	}
}

// getXdp reads the XDP state and MTU of one interface.
func getXdp(ifindex int) (xdpState, error) {
	body, err := rtnl(unix.RTM_GETLINK, 0, ifindex, nil, unix.RTM_NEWLINK)
	if err != nil {
		return xdpState{}, fmt.Errorf("RTM_GETLINK: %w", err)
	}
	return parseLinkMsg(body)
}

// setXdp attaches fd (or detaches, fd = -1) with flags; expectedFd >= 0 adds
// IFLA_XDP_EXPECTED_FD (with XDP_FLAGS_REPLACE: only if that program is the attached one).
func setXdp(ifindex, fd int, flags uint32, expectedFd int) error {
	var nested []byte
	nested = rtAttr(nested, iflaXdpFd, u32(uint32(int32(fd))))
	nested = rtAttr(nested, iflaXdpFlags, u32(flags))
	if expectedFd >= 0 {
		nested = rtAttr(nested, iflaXdpExpectedFd, u32(uint32(int32(expectedFd))))
	}
	attrs := rtAttr(nil, unix.IFLA_XDP|unix.NLA_F_NESTED, nested)
	_, err := rtnl(unix.RTM_SETLINK, unix.NLM_F_ACK, ifindex, attrs, 0)
	return err
}
