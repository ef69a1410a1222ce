// Command synflood sends TCP SYNs from one of this host's addresses to a listener, for
// nettune's xdp benchmark: the flood the synFlood XDP filter is measured against.
//
//	synflood --src 198.19.8.1 --dst 198.19.8.2 --port 8080 [--rate 50000] \
//	         [--duration 10] [--count 1000000]
//
// Each SYN is a raw IPv4 packet (IP_HDRINCL) from --src with a random source port, sequence
// number and IP id. It is bounded by construction: both addresses must lie in the
// benchmarking range 198.18.0.0/15 (RFC 2544) and --src must be an address of the host it
// runs on (no spoofing); it sends for at most --duration seconds (at most 60) and at most
// --count packets (at most 50 million), at --rate packets a second (0: as fast as it can),
// and stops early on SIGINT/SIGTERM. At the end it prints one JSON line on stdout:
// {"sent":…,"errors":…,"seconds":…,"pps":…,…}.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// MaxDuration caps --duration, in seconds.
	MaxDuration = 60
	// MaxCount caps --count.
	MaxCount = 50_000_000
)

// benchRange is the only range synflood sends from or to: 198.18.0.0/15, set aside for
// benchmarking (RFC 2544), where nettune's sandbox hosts live.
var benchRange = netip.MustParsePrefix("198.18.0.0/15")

// inBenchRange reports whether addr is an IPv4 address inside 198.18.0.0/15.
func inBenchRange(addr netip.Addr) bool {
	return addr.Is4() && benchRange.Contains(addr)
}

// config is what the command line asks for, checked.
type config struct {
	src, dst netip.Addr
	port     uint16
	rate     int // packets a second; 0: as fast as possible
	duration time.Duration
	count    int64
}

// parseConfig checks the flags' values against the limits; it does not look at the host.
func parseConfig(src, dst string, port, rate, durationSec int, count int64) (config, error) {
	var c config
	var err error
	if c.src, err = netip.ParseAddr(src); err != nil {
		return c, fmt.Errorf("--src %q is not an IP address", src)
	}
	if c.dst, err = netip.ParseAddr(dst); err != nil {
		return c, fmt.Errorf("--dst %q is not an IP address", dst)
	}
	if !inBenchRange(c.src) {
		return c, fmt.Errorf("--src %s is outside %s: synflood only sends between benchmarking addresses", c.src, benchRange)
	}
	if !inBenchRange(c.dst) {
		return c, fmt.Errorf("--dst %s is outside %s: synflood only sends between benchmarking addresses", c.dst, benchRange)
	}
	if c.src == c.dst {
		return c, fmt.Errorf("--src and --dst are both %s", c.src)
	}
	if port < 1 || port > 65535 {
		return c, fmt.Errorf("--port must be within 1..65535, got %d", port)
	}
	c.port = uint16(port)
	if rate < 0 || rate > 10_000_000 {
		return c, fmt.Errorf("--rate must be within 0..10000000 packets a second (0: as fast as possible), got %d", rate)
	}
	c.rate = rate
	if durationSec < 1 || durationSec > MaxDuration {
		return c, fmt.Errorf("--duration must be within 1..%d seconds, got %d", MaxDuration, durationSec)
	}
	c.duration = time.Duration(durationSec) * time.Second
	if count < 1 || count > MaxCount {
		return c, fmt.Errorf("--count must be within 1..%d, got %d", MaxCount, count)
	}
	c.count = count
	return c, nil
}

// ownAddress reports whether addr is assigned to one of this host's interfaces.
func ownAddress(addr netip.Addr) (bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false, fmt.Errorf("list this host's addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(p.IP); ok && ip.Unmap() == addr {
				return true, nil
			}
		}
	}
	return false, nil
}

// result is the JSON line printed at the end.
type result struct {
	Src     string  `json:"src"`
	Dst     string  `json:"dst"`
	Port    uint16  `json:"port"`
	Sent    int64   `json:"sent"`
	Errors  int64   `json:"errors"`
	Seconds float64 `json:"seconds"`
	PPS     float64 `json:"pps"`
	Stopped string  `json:"stopped"`
}

// flood sends SYNs on fd until the duration or count is reached or stop is set.
func flood(fd int, c config, stop *atomic.Bool) result {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	to := &unix.SockaddrInet4{Addr: c.dst.As4()}
	pkt := make([]byte, synLen)
	start := time.Now()
	deadline := start.Add(c.duration)
	var sent, errs int64
	why := "duration"
	// The clock and the pacing are checked every `batch` packets, not on every one.
	const batch = 64
loop:
	for {
		if sent >= c.count {
			why = "count"
			break
		}
		if stop.Load() {
			why = "signal"
			break
		}
		now := time.Now()
		if !now.Before(deadline) {
			break
		}
		n := int64(batch)
		if c.rate > 0 {
			// Pacing: never ahead of rate × elapsed; sleep a little when there.
			due := int64(now.Sub(start).Seconds()*float64(c.rate)) + 1
			if due <= sent {
				time.Sleep(time.Millisecond)
				continue
			}
			n = min(n, due-sent)
		}
		n = min(n, c.count-sent)
		for range n {
			buildSyn(pkt, c.src, c.dst, uint16(1024+rng.IntN(65536-1024)), c.port, rng.Uint32(), uint16(rng.Uint32()))
			if err := unix.Sendto(fd, pkt, 0, to); err != nil {
				errs++
				if err == unix.ENOBUFS || err == unix.EAGAIN {
					// The device queue is full: give it a moment instead of spinning.
					time.Sleep(100 * time.Microsecond)
					continue
				}
				if err != unix.EINTR {
					fmt.Fprintf(os.Stderr, "synflood: send: %v\n", err)
					why = "error"
					break loop
				}
				continue
			}
			sent++
		}
	}
	secs := time.Since(start).Seconds()
	return result{
		Src: c.src.String(), Dst: c.dst.String(), Port: c.port,
		Sent: sent, Errors: errs, Seconds: secs, PPS: float64(sent) / secs, Stopped: why,
	}
}

func main() {
	src := flag.String("src", "", "source address: one of this host's, inside 198.18.0.0/15")
	dst := flag.String("dst", "", "target address, inside 198.18.0.0/15")
	port := flag.Int("port", 0, "target TCP port")
	rate := flag.Int("rate", 0, "packets a second (0: as fast as possible)")
	duration := flag.Int("duration", 10, fmt.Sprintf("seconds to send, at most %d", MaxDuration))
	count := flag.Int64("count", MaxCount, fmt.Sprintf("packets to send, at most %d", MaxCount))
	flag.Parse()
	fail := func(f string, a ...any) {
		fmt.Fprintf(os.Stderr, "synflood: "+f+"\n", a...)
		os.Exit(2)
	}
	if flag.NArg() > 0 {
		fail("unexpected argument %q", flag.Arg(0))
	}
	c, err := parseConfig(*src, *dst, *port, *rate, *duration, *count)
	if err != nil {
		fail("%v", err)
	}
	own, err := ownAddress(c.src)
	if err != nil {
		fail("%v", err)
	}
	if !own {
		fail("--src %s is not an address of this host: synflood does not spoof sources", c.src)
	}
	// IPPROTO_RAW implies IP_HDRINCL; it is set explicitly all the same.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		fail("raw socket (needs CAP_NET_RAW): %v", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1); err != nil {
		fail("IP_HDRINCL: %v", err)
	}
	var stop atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		stop.Store(true)
	}()
	r := flood(fd, c, &stop)
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if r.Stopped == "error" {
		os.Exit(1)
	}
}
