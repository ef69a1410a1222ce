package main

// The shipped programs in xdp/ (repository root), compiled here with clang as setup does, their
// constants set through setConstants, run by the kernel on crafted packets (BPF_PROG_TEST_RUN:
// nothing is attached to any interface). Needs root and clang, as `npm test` has.

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

const (
	xdpDrop = 1
	xdpPass = 2
)

// compileShipped builds xdp/<name>.c and returns its collection spec.
func compileShipped(t *testing.T, name string) *ebpf.CollectionSpec {
	t.Helper()
	src, _ := filepath.Abs(filepath.Join("..", "..", "xdp", name+".c"))
	out := filepath.Join(t.TempDir(), name+".o")
	triple := "x86_64-linux-gnu"
	if runtime.GOARCH == "arm64" {
		triple = "aarch64-linux-gnu"
	}
	cmd := exec.Command("clang", "-target", "bpf", "-mcpu=v3", "-O2", "-g", "-Wall", "-Werror",
		"-I/usr/include/"+triple, "-c", src, "-o", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang %s: %v\n%s", name, err, msg)
	}
	spec, err := ebpf.LoadCollectionSpec(out)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// load sets the constants (JSON, as nettune passes them) and loads the collection.
func load(t *testing.T, spec *ebpf.CollectionSpec, consts string) *ebpf.Collection {
	t.Helper()
	c, err := parseConstants(consts)
	if err != nil {
		t.Fatal(err)
	}
	if err := setConstants(spec, c); err != nil {
		t.Fatalf("constants: %v", err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		if os.Geteuid() != 0 {
			t.Fatalf("loading needs root (npm test runs as root): %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(coll.Close)
	return coll
}

type pkt struct {
	v6          bool
	src         [16]byte // IPv4 in the first 4 bytes
	proto       byte     // 6 TCP, 17 UDP, 1 ICMP
	dport       uint16
	syn, ack    bool
	fragOffset  uint16 // IPv4: a later fragment
	ipv6NextHdr byte   // overrides the next header (an extension header)
}

func v4(a, b, c, d byte) [16]byte { return [16]byte{a, b, c, d} }

// frame renders an Ethernet frame with the IP and TCP/UDP headers of p.
func (p pkt) frame() []byte {
	b := make([]byte, 0, 128)
	b = append(b, 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1) // dst, src MAC
	l4 := make([]byte, 20)
	binary.BigEndian.PutUint16(l4[0:], 40000)
	binary.BigEndian.PutUint16(l4[2:], p.dport)
	if p.proto == 6 {
		l4[12] = 5 << 4
		if p.syn {
			l4[13] |= 0x02
		}
		if p.ack {
			l4[13] |= 0x10
		}
	} else if p.proto == 17 {
		l4 = l4[:8]
		binary.BigEndian.PutUint16(l4[4:], 8)
	}
	if p.v6 {
		b = append(b, 0x86, 0xdd)
		ip := make([]byte, 40)
		ip[0] = 6 << 4
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
		ip[6] = p.proto
		if p.ipv6NextHdr != 0 {
			ip[6] = p.ipv6NextHdr
		}
		ip[7] = 64
		copy(ip[8:24], p.src[:])
		copy(ip[24:40], []byte{0x20, 0x01, 0x0d, 0xb8, 15: 1})
		return append(append(b, ip...), l4...)
	}
	b = append(b, 0x08, 0x00)
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(ip[6:], p.fragOffset)
	ip[8] = 64
	ip[9] = p.proto
	copy(ip[12:16], p.src[:4])
	copy(ip[16:20], []byte{198, 18, 0, 1})
	return append(append(b, ip...), l4...)
}

func run1(t *testing.T, prog *ebpf.Program, p pkt) uint32 {
	t.Helper()
	ret, err := prog.Run(&ebpf.RunOptions{Data: p.frame()})
	if err != nil {
		t.Fatal(err)
	}
	return ret
}

// counts sums a per-CPU counter array.
func counts(t *testing.T, m *ebpf.Map) []uint64 {
	t.Helper()
	info, _ := m.Info()
	out := make([]uint64, info.MaxEntries)
	for i := range out {
		var per []uint64
		if err := m.Lookup(uint32(i), &per); err != nil {
			t.Fatal(err)
		}
		for _, v := range per {
			out[i] += v
		}
	}
	return out
}

func TestSynFlood(t *testing.T) {
	spec := compileShipped(t, "syn_flood")
	// 1 SYN per second after a burst of 5: a burst of 20 SYNs from one source passes 6.
	coll := load(t, spec, `{"cfg_rate":1,"cfg_burst":5,"cfg_port_count":2,"cfg_ports":[80,443]}`)
	prog := coll.Programs["xdp_syn_flood"]
	a := pkt{src: v4(198, 18, 9, 1), proto: 6, dport: 443, syn: true}
	passed := 0
	for i := 0; i < 20; i++ {
		if run1(t, prog, a) == xdpPass {
			passed++
		}
	}
	if passed != 6 {
		t.Fatalf("one source's burst: %d of 20 SYNs passed, want 6 (burst 5 + 1)", passed)
	}
	// Another source, an unprotected port, a SYN-ACK, an ACK, UDP: all pass.
	others := []pkt{
		{src: v4(198, 18, 9, 2), proto: 6, dport: 443, syn: true},
		{src: v4(198, 18, 9, 1), proto: 6, dport: 22, syn: true},
		{src: v4(198, 18, 9, 1), proto: 6, dport: 443, syn: true, ack: true},
		{src: v4(198, 18, 9, 1), proto: 6, dport: 443, ack: true},
		{src: v4(198, 18, 9, 1), proto: 17, dport: 443},
		{v6: true, src: [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 9}, proto: 6, dport: 80, syn: true},
	}
	for i, p := range others {
		if got := run1(t, prog, p); got != xdpPass {
			t.Errorf("packet %d: %d, want XDP_PASS", i, got)
		}
	}
	got := counts(t, coll.Maps["syn_stats"])
	// seen: 20 + the other source's + the v6 one; passed: 6 + 2; dropped per source: 14.
	if want := []uint64{22, 8, 14, 0}; !equal(got, want) {
		t.Fatalf("syn_stats %v, want %v", got, want)
	}
}

func TestSynFloodTotalLimit(t *testing.T) {
	spec := compileShipped(t, "syn_flood")
	coll := load(t, spec, `{"cfg_rate":1000,"cfg_burst":1000,"cfg_total_rate":1,"cfg_total_burst":3}`)
	prog := coll.Programs["xdp_syn_flood"]
	passed := 0
	for i := 0; i < 10; i++ {
		p := pkt{src: v4(198, 18, 10, byte(i+1)), proto: 6, dport: 8080, syn: true}
		if run1(t, prog, p) == xdpPass {
			passed++
		}
	}
	if passed != 4 {
		t.Fatalf("10 sources under a total limit of burst 3: %d passed, want 4", passed)
	}
	if got, want := counts(t, coll.Maps["syn_stats"]), []uint64{10, 4, 0, 6}; !equal(got, want) {
		t.Fatalf("syn_stats %v, want %v", got, want)
	}
}

func TestDropPorts(t *testing.T) {
	spec := compileShipped(t, "drop_ports")
	coll := load(t, spec, `{"cfg_tcp_count":1,"cfg_tcp_ports":[23],"cfg_udp_count":2,"cfg_udp_ports":[53,11211]}`)
	prog := coll.Programs["xdp_drop_ports"]
	cases := []struct {
		p    pkt
		want uint32
	}{
		{pkt{src: v4(198, 18, 0, 5), proto: 6, dport: 23, syn: true}, xdpDrop},
		{pkt{src: v4(198, 18, 0, 5), proto: 6, dport: 22, syn: true}, xdpPass},
		{pkt{src: v4(198, 18, 0, 5), proto: 17, dport: 11211}, xdpDrop},
		{pkt{src: v4(198, 18, 0, 5), proto: 17, dport: 23}, xdpPass},
		{pkt{v6: true, src: [16]byte{0x20, 0x01, 15: 2}, proto: 17, dport: 53}, xdpDrop},
		{pkt{src: v4(198, 18, 0, 5), proto: 17, dport: 53, fragOffset: 100}, xdpPass},
		{pkt{src: v4(198, 18, 0, 5), proto: 1}, xdpPass},
	}
	for i, c := range cases {
		if got := run1(t, prog, c.p); got != c.want {
			t.Errorf("case %d: %d, want %d", i, got, c.want)
		}
	}
	if got, want := counts(t, coll.Maps["drop_stats"]), []uint64{1, 2}; !equal(got, want) {
		t.Fatalf("drop_stats %v, want %v", got, want)
	}
}

func TestAllowList(t *testing.T) {
	spec := compileShipped(t, "allow_list")
	// 198.18.0.0/15 and 2001:db8::/32 may reach TCP 22; everything else passes unchecked.
	coll := load(t, spec, `{"cfg_v4_count":1,"cfg_v4_addr":[3323068416],"cfg_v4_mask":[4294836224],
		"cfg_v6_count":1,"cfg_v6_addr":[[536939960,0,0,0]],"cfg_v6_mask":[[4294967295,0,0,0]],
		"cfg_tcp_count":1,"cfg_tcp_ports":[22]}`)
	prog := coll.Programs["xdp_allow_list"]
	cases := []struct {
		name string
		p    pkt
		want uint32
	}{
		{"listed v4 to 22", pkt{src: v4(198, 19, 3, 4), proto: 6, dport: 22, syn: true}, xdpPass},
		{"other v4 to 22", pkt{src: v4(198, 20, 0, 1), proto: 6, dport: 22, syn: true}, xdpDrop},
		{"other v4 to 80", pkt{src: v4(198, 20, 0, 1), proto: 6, dport: 80, syn: true}, xdpPass},
		{"other v4 ICMP", pkt{src: v4(198, 20, 0, 1), proto: 1}, xdpPass},
		{"other v4 later fragment", pkt{src: v4(198, 20, 0, 1), proto: 6, fragOffset: 8}, xdpDrop},
		{"listed v6 to 22", pkt{v6: true, src: [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 7}, proto: 6, dport: 22, syn: true}, xdpPass},
		{"other v6 to 22", pkt{v6: true, src: [16]byte{0x20, 0x01, 0x0d, 0xb9, 15: 7}, proto: 6, dport: 22, syn: true}, xdpDrop},
		{"other v6 behind an extension header", pkt{v6: true, src: [16]byte{0x20, 0x02, 15: 7}, proto: 6, ipv6NextHdr: 43}, xdpDrop},
		{"listed v6 behind an extension header", pkt{v6: true, src: [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 7}, proto: 6, ipv6NextHdr: 60}, xdpPass},
	}
	for _, c := range cases {
		if got := run1(t, prog, c.p); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	if got, want := counts(t, coll.Maps["allow_stats"]), []uint64{7, 3, 4}; !equal(got, want) {
		t.Fatalf("allow_stats %v, want %v", got, want)
	}
}

func TestConstantsRefused(t *testing.T) {
	spec := compileShipped(t, "syn_flood")
	for _, c := range []struct{ consts, want string }{
		{`{"cfg_nope":1}`, `the object has no constant "cfg_nope"`},
		{`{"cfg_rate":-1}`, `constant "cfg_rate": -1 does not fit in a u32`},
		{`{"cfg_rate":4294967296}`, `does not fit in a u32`},
		{`{"cfg_rate":1.5}`, `1.5 is not a whole number`},
		{`{"cfg_rate":[1]}`, `must be a whole number`},
		{`{"cfg_ports":7}`, `is an array of 64; give a list`},
		{`{"cfg_ports":[65536]}`, `[0] 65536 does not fit in a u16`},
		{`{"syn_stats":1}`, `no constant "syn_stats"`},
	} {
		consts, err := parseConstants(c.consts)
		if err != nil {
			t.Fatal(err)
		}
		err = setConstants(spec.Copy(), consts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.consts, err, c.want)
		}
	}
	if _, err := parseConstants(`[1]`); err == nil {
		t.Error("a JSON list as --consts was accepted")
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestConstantsFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"attach", "--dev", "lo", "--consts-base64", "!!"}, "is not base64"},
		{[]string{"attach", "--dev", "lo", "--consts", "{}", "--consts-base64", "e30="}, "one or the other"},
		{[]string{"attach", "--dev", "lo", "--consts-base64", "WzFd"}, "must be a JSON object"},
		{[]string{"counters", "--pin-dir", "/sys/fs/bpf/nettune/x", "--map", "../x"}, "--map must be a map's name"},
	} {
		var out strings.Builder
		if code := run(c.args, &out); code != 2 || !strings.Contains(out.String(), c.want) {
			t.Errorf("%v: exit %d %s, want 2 and %q", c.args, code, out.String(), c.want)
		}
	}
}
