/**
 * A minimal QMP (QEMU Machine Protocol) client: one connection per command, bounded in time.
 * QEMU accepts one QMP client at a time on a socket, so nothing here holds the socket open.
 */
import * as net from "node:net";

export interface QmpReply {
  return?: unknown;
  error?: { class: string; desc: string };
}

/** Runs one QMP command on the socket at `socketPath` and returns its reply. */
export function qmp(
  socketPath: string,
  execute: string,
  args?: Record<string, unknown>,
  timeoutMs = 5000,
): Promise<QmpReply> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let buf = "";
    let stage: "greeting" | "capabilities" | "command" = "greeting";
    const timer = setTimeout(
      () => finish(new Error(`qmp: ${execute}: no answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
    const finish = (err: Error | undefined, reply?: QmpReply) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(reply ?? {});
    };
    const send = (msg: Record<string, unknown>) => sock.write(JSON.stringify(msg) + "\r\n");
    sock.on("error", (e) => finish(new Error(`qmp: ${execute}: ${e.message}`)));
    // `quit` closes the socket without a reply when QEMU exits first: that is success too.
    sock.on("close", () =>
      finish(
        stage === "command" && execute === "quit"
          ? undefined
          : new Error(`qmp: ${execute}: connection closed`),
      ),
    );
    sock.on("data", (d) => {
      buf += d.toString("utf8");
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if ("event" in msg) continue;
        if (stage === "greeting" && "QMP" in msg) {
          stage = "capabilities";
          send({ execute: "qmp_capabilities" });
        } else if (stage === "capabilities" && ("return" in msg || "error" in msg)) {
          if ("error" in msg) return finish(new Error(`qmp: capabilities refused: ${line}`));
          stage = "command";
          send(args ? { execute, arguments: args } : { execute });
        } else if (stage === "command" && ("return" in msg || "error" in msg)) {
          return finish(undefined, msg);
        }
      }
    });
  });
}
