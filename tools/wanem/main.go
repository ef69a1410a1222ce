// Command wanem is a userspace WAN between two network namespaces, for nettune's effect
// benchmark on kernels without netem.
//
// It creates one TUN device in each namespace and carries the IP packets between them with a
// fixed one-way delay, random loss and, optionally, a bottleneck rate with a bounded queue
// (tail drop). TCP runs end to end between the namespaces' own stacks; only the path is
// emulated. The caller addresses the devices and sets them up once wanem prints "ready".
//
//	wanem --ns-a /run/netns/A --dev-a wan0 --ns-b /run/netns/B --dev-b wan0 \
//	      --delay 25ms --loss 0.01 [--rate-mbit 100 --queue 50ms] [--duration 10m]
//
// It stops by itself after --duration, or on SIGINT/SIGTERM, and prints its counters as one
// JSON line on stdout. The devices vanish with the process.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// openTun creates TUN device `dev` in the network namespace at nsPath and returns its fd.
// The calling OS thread enters the namespace only for the ioctl and then returns to its own.
func openTun(nsPath, dev string) (int, error) {
	if len(dev) == 0 || len(dev) > 15 {
		return -1, fmt.Errorf("device name %q must be 1-15 characters", dev)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := syscall.Open("/proc/thread-self/ns/net", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open own namespace: %w", err)
	}
	defer syscall.Close(self)
	target, err := syscall.Open(nsPath, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open namespace %s: %w", nsPath, err)
	}
	defer syscall.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return -1, fmt.Errorf("enter namespace %s: %w", nsPath, err)
	}
	defer func() {
		if e := unix.Setns(self, unix.CLONE_NEWNET); e != nil {
			// A thread left in the wrong namespace must not be reused.
			panic(fmt.Sprintf("return to own namespace: %v", e))
		}
	}()
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	req, err := unix.NewIfreq(dev)
	if err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("device name %q: %w", dev, err)
	}
	req.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, req); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("create %s in %s: %w", dev, nsPath, err)
	}
	return fd, nil
}

// counters of one direction, printed by name on exit.
type counters struct {
	Packets, Bytes, LossDrops, QueueDrops, Delivered atomic.Int64
}

func (c *counters) snapshot() map[string]int64 {
	return map[string]int64{
		"packets":    c.Packets.Load(),
		"bytes":      c.Bytes.Load(),
		"lossDrops":  c.LossDrops.Load(),
		"queueDrops": c.QueueDrops.Load(),
		"delivered":  c.Delivered.Load(),
	}
}

type packet struct {
	data []byte
	at   time.Time
}

type path struct {
	delay    time.Duration
	loss     float64
	rateBps  float64 // bits per second; 0: no bottleneck
	queueMax time.Duration
	rng      *rand.Rand
	stats    counters
}

// carry moves packets from fd `from` to fd `to` until the process ends.
func (p *path) carry(from, to int) {
	q := make(chan packet, 1<<16)
	go func() {
		for pk := range q {
			if d := time.Until(pk.at); d > 0 {
				time.Sleep(d)
			}
			if _, err := syscall.Write(to, pk.data); err == nil {
				p.stats.Delivered.Add(1)
			}
		}
	}()
	buf := make([]byte, 65536)
	var nextFree time.Time
	for {
		n, err := syscall.Read(from, buf)
		if err != nil {
			if err == syscall.EINTR || err == syscall.EAGAIN {
				continue
			}
			fmt.Fprintf(os.Stderr, "wanem: read: %v\n", err)
			os.Exit(1)
		}
		now := time.Now()
		p.stats.Packets.Add(1)
		p.stats.Bytes.Add(int64(n))
		if p.loss > 0 && p.rng.Float64() < p.loss {
			p.stats.LossDrops.Add(1)
			continue
		}
		at := now
		if p.rateBps > 0 {
			start := now
			if nextFree.After(start) {
				start = nextFree
			}
			if start.Sub(now) > p.queueMax {
				p.stats.QueueDrops.Add(1)
				continue
			}
			nextFree = start.Add(time.Duration(float64(n*8) / p.rateBps * float64(time.Second)))
			at = nextFree
		}
		data := make([]byte, n)
		copy(data, buf[:n])
		select {
		case q <- packet{data: data, at: at.Add(p.delay)}:
		default:
			p.stats.QueueDrops.Add(1)
		}
	}
}

func main() {
	nsA := flag.String("ns-a", "", "network namespace file of side A, e.g. /run/netns/A")
	devA := flag.String("dev-a", "wan0", "TUN device to create in side A")
	nsB := flag.String("ns-b", "", "network namespace file of side B")
	devB := flag.String("dev-b", "wan0", "TUN device to create in side B")
	delay := flag.Duration("delay", 25*time.Millisecond, "one-way delay, each direction")
	loss := flag.Float64("loss", 0, "probability a packet is lost, each direction (0..1)")
	rate := flag.Float64("rate-mbit", 0, "bottleneck rate in Mbit/s, each direction (0: none)")
	queue := flag.Duration("queue", 50*time.Millisecond, "most queueing delay at the bottleneck before tail drop")
	duration := flag.Duration("duration", 10*time.Minute, "stop by itself after this long")
	seed := flag.Int64("seed", 1, "seed of the loss decisions")
	flag.Parse()
	fail := func(f string, a ...any) {
		fmt.Fprintf(os.Stderr, "wanem: "+f+"\n", a...)
		os.Exit(2)
	}
	switch {
	case *nsA == "" || *nsB == "":
		fail("--ns-a and --ns-b are required")
	case *loss < 0 || *loss >= 1:
		fail("--loss must be in [0, 1), got %v", *loss)
	case *delay < 0 || *delay > 10*time.Second:
		fail("--delay must be within 0..10s, got %v", *delay)
	case *rate < 0:
		fail("--rate-mbit must not be negative, got %v", *rate)
	case *duration <= 0 || *duration > time.Hour:
		fail("--duration must be within (0, 1h], got %v", *duration)
	}
	fdA, err := openTun(*nsA, *devA)
	if err != nil {
		fail("%v", err)
	}
	fdB, err := openTun(*nsB, *devB)
	if err != nil {
		fail("%v", err)
	}
	mk := func(s int64) *path {
		return &path{delay: *delay, loss: *loss, rateBps: *rate * 1e6, queueMax: *queue, rng: rand.New(rand.NewSource(s))}
	}
	ab, ba := mk(*seed), mk(*seed+1)
	go ab.carry(fdA, fdB)
	go ba.carry(fdB, fdA)
	fmt.Println("ready")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
	case <-time.After(*duration):
		fmt.Fprintln(os.Stderr, "wanem: --duration reached; stopping")
	}
	out, _ := json.Marshal(map[string]any{"aToB": ab.stats.snapshot(), "bToA": ba.stats.snapshot()})
	fmt.Println(string(out))
}
