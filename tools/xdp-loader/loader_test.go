package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func st(progs map[string]uint32) xdpState { return xdpState{Progs: progs} }

func TestDecideAttach(t *testing.T) {
	const ifi = 2
	link := func(ifindex, prog uint32) pinState {
		return pinState{Kind: "link", LinkID: 7, Ifindex: ifindex, ProgID: prog}
	}
	cases := []struct {
		name          string
		st            xdpState
		mode          string
		pins          pinState
		replace, link uint32
		action        string
		stale         bool
		code          string
	}{
		{name: "fresh", st: st(nil), mode: "native", action: actCreate},
		{name: "foreign native", st: st(map[string]uint32{"native": 9}), mode: "native", code: codeForeign},
		{name: "foreign generic blocks native", st: st(map[string]uint32{"generic": 9}), mode: "native", code: codeForeign},
		{name: "hw beside generic", st: st(map[string]uint32{"generic": 9}), mode: "hw", action: actCreate},
		{name: "our link: update", st: st(map[string]uint32{"native": 5}), mode: "native", pins: link(ifi, 5), action: actUpdateLink},
		{name: "our link: other mode", st: st(map[string]uint32{"native": 5}), mode: "generic", pins: link(ifi, 5), code: codeModeChange},
		{name: "our link on another device", st: st(nil), mode: "native", pins: link(3, 5), code: codePinDirInUse},
		{name: "defunct link, free", st: st(nil), mode: "native", pins: link(0, 5), action: actCreate, stale: true},
		{name: "defunct link, foreign", st: st(map[string]uint32{"native": 9}), mode: "native", pins: link(0, 5), code: codeForeign},
		{name: "our netlink prog", st: st(map[string]uint32{"generic": 5}), mode: "generic", pins: pinState{Kind: "prog", ProgID: 5}, action: actUpdateProg},
		{name: "stale netlink prog", st: st(nil), mode: "generic", pins: pinState{Kind: "prog", ProgID: 5}, action: actCreate, stale: true},
		{name: "takeover replace", st: st(map[string]uint32{"generic": 9}), mode: "generic", replace: 9, action: actReplaceForeign},
		{name: "takeover replace, other mode", st: st(map[string]uint32{"generic": 9}), mode: "native", replace: 9, code: codeModeChange},
		{name: "replace names another program", st: st(map[string]uint32{"generic": 9}), mode: "generic", replace: 8, code: codeForeign},
		{name: "expected link matches", st: st(map[string]uint32{"native": 5}), mode: "native", pins: link(ifi, 5), link: 7, action: actUpdateLink},
		{name: "expected link differs", st: st(map[string]uint32{"native": 5}), mode: "native", pins: link(ifi, 5), link: 8, code: codeLinkMismatch},
		{name: "expected link gone", st: st(nil), mode: "native", link: 7, code: codeLinkMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.st.Progs == nil {
				c.st.Progs = map[string]uint32{}
			}
			action, stale, err := decideAttach(c.st, ifi, c.mode, c.pins, c.replace, c.link)
			if c.code != "" {
				if err == nil || err.Code != c.code {
					t.Fatalf("want code %s, got action %q err %v", c.code, action, err)
				}
				return
			}
			if err != nil || action != c.action || stale != c.stale {
				t.Fatalf("want %s stale=%v, got %q stale=%v err %v", c.action, c.stale, action, stale, err)
			}
		})
	}
}

func TestKernelAtLeast(t *testing.T) {
	for release, want := range map[string]bool{
		"6.1.0-31-cloud-amd64": true, "5.9.0": true, "5.8.18": false, "5.10-rc1": true,
		"4.19.0-27-amd64": false, "6.18.0": true, "garbage": false, "": false,
	} {
		if got := kernelAtLeast(release, 5, 9); got != want {
			t.Errorf("kernelAtLeast(%q, 5, 9) = %v, want %v", release, got, want)
		}
	}
}

func TestClassifyAttach(t *testing.T) {
	cases := map[string]struct {
		err  error
		code string
	}{
		"virtio mtu":   {&netlinkError{Errno: syscall.EINVAL, Msg: "virtio_net: MTU too large to enable XDP"}, codeMtuTooLarge},
		"veth mtu":     {&netlinkError{Errno: syscall.ERANGE, Msg: "veth: Peer MTU is too large to set XDP"}, codeMtuTooLarge},
		"bare ERANGE":  {fmt.Errorf("create link: %w", syscall.ERANGE), codeMtuTooLarge},
		"busy":         {&netlinkError{Errno: syscall.EBUSY, Msg: "XDP program already attached."}, codeForeign},
		"no native":    {&netlinkError{Errno: syscall.EOPNOTSUPP, Msg: "Underlying driver does not support XDP in native mode"}, codeModeUnsupported},
		"other EINVAL": {&netlinkError{Errno: syscall.EINVAL}, codeAttachFailed},
	}
	for name, c := range cases {
		if got := classifyAttach(c.err, "native"); got != c.code {
			t.Errorf("%s: got %s, want %s", name, got, c.code)
		}
	}
}

// nlAttr builds one attribute the way the kernel does, for the parser tests.
func nlAttr(typ uint16, payload []byte) []byte { return rtAttr(nil, typ, payload) }

func TestParseXdp(t *testing.T) {
	// Single generic program: ATTACHED=SKB, SKB_PROG_ID and PROG_ID (as rtnl_xdp_fill sends).
	single := append(nlAttr(iflaXdpAttached, []byte{xdpAttachedSkb}), nlAttr(iflaXdpSkbProgID, u32(42))...)
	single = append(single, nlAttr(iflaXdpProgID, u32(42))...)
	got := parseXdp(single)
	if got.Attached != xdpAttachedSkb || got.Progs["generic"] != 42 || len(got.Progs) != 1 {
		t.Fatalf("single: %+v", got)
	}
	// Offloaded and native at once: MULTI, no PROG_ID.
	multi := append(nlAttr(iflaXdpAttached, []byte{xdpAttachedMulti}), nlAttr(iflaXdpDrvProgID, u32(5))...)
	multi = append(multi, nlAttr(iflaXdpHwProgID, u32(6))...)
	got = parseXdp(multi)
	if got.Attached != xdpAttachedMulti || got.Progs["native"] != 5 || got.Progs["hw"] != 6 {
		t.Fatalf("multi: %+v", got)
	}
	// Old kernels (< 4.19): only ATTACHED and PROG_ID.
	old := append(nlAttr(iflaXdpAttached, []byte{xdpAttachedDrv}), nlAttr(iflaXdpProgID, u32(9))...)
	if got = parseXdp(old); got.Progs["native"] != 9 {
		t.Fatalf("old: %+v", got)
	}
	if got = parseXdp(nlAttr(iflaXdpAttached, []byte{xdpAttachedNone})); anyAttached(got) {
		t.Fatalf("none: %+v", got)
	}
	// A truncated attribute ends the walk instead of panicking.
	if got = parseXdp([]byte{0xff, 0x00, 0x02, 0x00, 1}); anyAttached(got) {
		t.Fatalf("truncated: %+v", got)
	}
}

func TestParseLinkMsg(t *testing.T) {
	body := make([]byte, unix.SizeofIfInfomsg)
	body = append(body, nlAttr(unix.IFLA_MTU, u32(1500))...)
	xdp := append(nlAttr(iflaXdpAttached, []byte{xdpAttachedDrv}), nlAttr(iflaXdpDrvProgID, u32(77))...)
	body = append(body, nlAttr(unix.IFLA_XDP|unix.NLA_F_NESTED, xdp)...)
	got, err := parseLinkMsg(body)
	if err != nil || got.MTU != 1500 || got.Progs["native"] != 77 {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestParseAck(t *testing.T) {
	errno := int32(-int32(syscall.EINVAL))
	body := make([]byte, 4+unix.SizeofNlMsghdr)
	binary.NativeEndian.PutUint32(body[0:4], uint32(errno))
	body = append(body, nlAttr(nlmsgerrAttrMsg, []byte("virtio_net: MTU too large to enable XDP\x00"))...)
	err := parseAck(unix.NLM_F_CAPPED|unix.NLM_F_ACK_TLVS, body)
	var ne *netlinkError
	if !errors.As(err, &ne) || ne.Errno != syscall.EINVAL || ne.Msg != "virtio_net: MTU too large to enable XDP" {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("netlinkError does not unwrap to its errno")
	}
	if err := parseAck(0, make([]byte, 4+unix.SizeofNlMsghdr)); err != nil {
		t.Fatalf("success ack: %v", err)
	}
}

func TestUsageErrorsAreJSON(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate", "--dev", "eth0"},
		{"attach", "--dev", "eth0", "--obj", "x.o", "--prog", "p"},
		{"attach", "--dev", "eth0", "--obj", "x.o", "--prog", "p", "--pin-dir", "/sys/fs/bpf/x", "--mode", "turbo"},
		{"show"},
	} {
		var out bytes.Buffer
		if code := run(args, &out); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		var res map[string]any
		if err := json.Unmarshal(out.Bytes(), &res); err != nil || res["code"] != codeUsage || res["error"] == "" {
			t.Errorf("%v: %q", args, out.String())
		}
	}
}

func TestMissingDevice(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"show", "--dev", "nettune-none0"}, &out); code != 1 {
		t.Fatalf("exit %d", code)
	}
	var res map[string]any
	_ = json.Unmarshal(out.Bytes(), &res)
	if res["code"] != codeNoDevice {
		t.Fatalf("%s", out.String())
	}
}
