/**
 * A TCP relay that adds a fixed delay to every chunk in each direction: the sandbox's way to
 * put WAN-like latency on a host's SSH path (the kernel here has no netem). Chunks keep their
 * order because every chunk waits the same time.
 *
 *   node relay.js --listen 198.18.1.1:2222 --target 198.18.1.2:22 --delay 50 --tag nettune-relay
 */
import * as net from "node:net";

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (!v) throw new Error(`relay: missing --${name}`);
  return v;
}

function splitHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(":");
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

function delayedPipe(from: net.Socket, to: net.Socket, delayMs: number): void {
  let pendingEnd = false;
  let inFlight = 0;
  from.on("data", (chunk) => {
    inFlight++;
    setTimeout(() => {
      inFlight--;
      if (!to.destroyed) to.write(chunk);
      if (pendingEnd && inFlight === 0) to.end();
    }, delayMs);
  });
  from.on("end", () => {
    if (inFlight === 0) setTimeout(() => to.end(), delayMs);
    else pendingEnd = true;
  });
  from.on("error", () => to.destroy());
  from.on("close", () => setTimeout(() => to.destroy(), delayMs + 10));
}

const listen = splitHostPort(arg("listen"));
const target = splitHostPort(arg("target"));
const delayMs = Number(arg("delay"));

const server = net.createServer((client) => {
  client.setNoDelay(true);
  const upstream = net.connect(target.port, target.host);
  upstream.setNoDelay(true);
  delayedPipe(client, upstream, delayMs);
  delayedPipe(upstream, client, delayMs);
});
server.listen(listen.port, listen.host, () => {
  process.stdout.write(
    `relay ${listen.host}:${listen.port} -> ${target.host}:${target.port} +${delayMs}ms\n`,
  );
});
process.on("SIGTERM", () => process.exit(0));
