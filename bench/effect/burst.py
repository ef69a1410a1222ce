"""A burst of TCP connection attempts against a listener that accepts slowly.

  python3 burst.py listen --port P --backlog B --rate R --seconds S
      listens with backlog B (the kernel caps it at net.core.somaxconn), accepts at most R
      connections a second, greets each with one byte and closes it; exits after S seconds,
      printing how many it accepted as one JSON line.
  python3 burst.py connect --host H --port P --count N --deadline D
      opens N non-blocking connections at once; one whose greeting has not arrived within D
      seconds of the burst's start counts as failed: the server never accepted it in time,
      whatever the client's own handshake said. Prints one JSON line.

Both stop by themselves; nothing here retries beyond what the kernel does.
"""

import argparse
import errno
import json
import resource
import select
import socket
import struct
import time


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(soft, n + 64), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < n + 64:
        raise SystemExit(f"burst: need {n + 64} file descriptors, the hard limit is {hard}")


def close_now(s):
    """Closes with a reset: the client keeps no TIME_WAIT, so a later burst finds free ports."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def listen(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a.host, a.port))
    s.listen(a.backlog)
    s.setblocking(False)
    print(json.dumps({"listening": True}), flush=True)
    start = time.monotonic()
    end = start + a.seconds
    accepted = 0
    interval = 1.0 / a.rate
    next_at = start
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now < next_at:
            time.sleep(min(next_at - now, end - now))
            continue
        try:
            c, _ = s.accept()
        except BlockingIOError:
            select.select([s], [], [], min(0.05, max(0.0, end - now)))
            continue
        try:
            c.send(b"x")
        except OSError:
            pass
        c.close()
        accepted += 1
        next_at = max(next_at + interval, now - 0.05)
    print(json.dumps({"accepted": accepted, "seconds": round(time.monotonic() - start, 3)}), flush=True)


def connect(a):
    raise_nofile(a.count)
    ep = select.epoll()
    socks = {}
    latencies = []
    refused = 0
    other = 0
    start = time.monotonic()
    deadline = start + a.deadline
    for _ in range(a.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((a.host, a.port))
        if err not in (0, errno.EINPROGRESS):
            other += 1
            s.close()
            continue
        socks[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN)
    burst_seconds = time.monotonic() - start
    while socks:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for fd, _ in ep.poll(left):
            s = socks.pop(fd)
            ep.unregister(fd)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            data = b""
            if err == 0:
                try:
                    data = s.recv(1)
                except OSError as e:
                    err = e.errno or -1
            if data == b"x":
                latencies.append(time.monotonic() - start)
            elif err == errno.ECONNREFUSED:
                refused += 1
            else:
                other += 1
            close_now(s)
    timed_out = len(socks)
    for s in socks.values():
        close_now(s)
    latencies.sort()
    p = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 3) if latencies else None
    print(
        json.dumps(
            {
                "attempted": a.count,
                "established": len(latencies),
                "failed": a.count - len(latencies),
                "timedOut": timed_out,
                "refused": refused,
                "otherErrors": other,
                "slow": sum(1 for t in latencies if t >= 0.9),
                "p50": p(0.5),
                "p99": p(0.99),
                "burstSeconds": round(burst_seconds, 3),
            }
        ),
        flush=True,
    )


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    li = sub.add_parser("listen")
    li.add_argument("--host", default="0.0.0.0")
    li.add_argument("--port", type=int, required=True)
    li.add_argument("--backlog", type=int, default=65535)
    li.add_argument("--rate", type=float, required=True)
    li.add_argument("--seconds", type=float, required=True)
    co = sub.add_parser("connect")
    co.add_argument("--host", required=True)
    co.add_argument("--port", type=int, required=True)
    co.add_argument("--count", type=int, required=True)
    co.add_argument("--deadline", type=float, required=True)
    a = ap.parse_args()
    if a.mode == "listen":
        if not (0 < a.rate <= 1e6 and 0 < a.seconds <= 300):
            raise SystemExit("burst: --rate must be in (0, 1e6] and --seconds in (0, 300]")
        listen(a)
    else:
        if not (0 < a.count <= 60000 and 0 < a.deadline <= 60):
            raise SystemExit("burst: --count must be in (0, 60000] and --deadline in (0, 60]")
        connect(a)


if __name__ == "__main__":
    main()
