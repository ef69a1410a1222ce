/**
 * tc and congestion control on the host: the `tc -j qdisc show` parser, the `tc qdisc`
 * renderers, what a host offers, the probe and the connection check, on real captures from this
 * machine and from a sandbox host (test/fixtures/tc and test/fixtures/congestion, see
 * test/fixtures/SOURCES.md).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";

import { ParseError } from "../../src/host/errors";
import {
  parseCongestionProbe,
  parseObservedAlgorithm,
  renderCongestionProbe,
  rootKindCheck,
} from "../../src/host/congestion";
import { parseSteps, renderSteps } from "../../src/host/steps";
import {
  ALWAYS_QDISCS,
  availableCongestionControl,
  availableQdiscs,
  childQdiscs,
  isKernelDefault,
  moduleName,
  parseTcQdiscs,
  qdiscParameters,
  renderTcQdiscDelete,
  renderTcQdiscReplace,
  renderTcQdiscShow,
  rootQdisc,
  unfitRootQdisc,
} from "../../src/host/tc";

const TC = path.join(__dirname, "..", "fixtures", "tc");
const CC = path.join(__dirname, "..", "fixtures", "congestion");
const tc = (f: string) => fs.readFileSync(path.join(TC, f), "utf8");
const cc = (f: string) => fs.readFileSync(path.join(CC, f), "utf8");
const JSON_FILES = fs
  .readdirSync(TC)
  .filter((f) => f.endsWith(".json"))
  .sort();
const CONFIG = cc("config-6.18.44-fc-v782.txt");

describe("parseTcQdiscs on every capture", () => {
  it.each(JSON_FILES)("%s", (file) => {
    const raw = JSON.parse(tc(file)) as { kind: string; handle: string }[];
    const qs = parseTcQdiscs(tc(file), file.startsWith("veth") ? "ntcc0" : undefined);
    expect(qs.map((q) => [q.kind, q.handle])).toEqual(raw.map((r) => [r.kind, r.handle]));
    for (const q of qs) expect(q.dev).toBeDefined();
  });
});

describe("parseTcQdiscs: facts from the captures", () => {
  it("this machine: noqueue on lo, pfifo_fast on the virtio NIC, both the kernel's defaults", () => {
    const qs = parseTcQdiscs(tc("machine-qdisc-show.json"));
    expect(rootQdisc(qs, "eth0")).toEqual({
      kind: "pfifo_fast",
      handle: "0:",
      dev: "eth0",
      root: true,
      refcnt: 2,
      options: {
        bands: 3,
        priomap: [1, 2, 2, 2, 1, 2, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
        multiqueue: false,
      },
    });
    expect(rootQdisc(qs, "lo")?.kind).toBe("noqueue");
    expect(qs.every(isKernelDefault)).toBe(true);
  });

  it("a sandbox host: tbf and ingress on one veth, htb with a handle on the other", () => {
    const qs = parseTcQdiscs(tc("host-qdisc-show.json"));
    expect(rootQdisc(qs, "ntcc1")).toMatchObject({ kind: "tbf", handle: "8010:" });
    // ingress is not the root and not a child of the root.
    expect(qs.find((q) => q.kind === "ingress")).toMatchObject({
      dev: "ntcc1",
      root: false,
      parent: "ffff:fff1",
    });
    expect(childQdiscs(qs, "ntcc1")).toEqual([]);
    expect(rootQdisc(qs, "ntcc0")).toMatchObject({ kind: "htb", handle: "1:" });
    expect(isKernelDefault(rootQdisc(qs, "ntcc0")!)).toBe(false);
  });

  it("mq has one child per transmit queue", () => {
    const qs = parseTcQdiscs(tc("veth-mq.json"), "ntcc0");
    expect(rootQdisc(qs, "ntcc0")).toMatchObject({ kind: "mq", handle: "800e:" });
    expect(childQdiscs(qs, "ntcc0").map((q) => q.parent)).toEqual([
      "800e:4",
      "800e:3",
      "800e:2",
      "800e:1",
    ]);
  });

  it("the kernel's default root after `tc qdisc del` is noqueue with handle 0: again", () => {
    const [q] = parseTcQdiscs(tc("veth-after-del.json"), "ntcc0");
    expect(q).toMatchObject({ kind: "noqueue", handle: "0:", dev: "ntcc0", root: true });
    // An explicit noqueue is not the kernel's default.
    expect(isKernelDefault(parseTcQdiscs(tc("veth-noqueue-explicit.json"))[0]!)).toBe(false);
  });
});

describe("parseTcQdiscs: text that is not tc's", () => {
  it.each([
    ["empty", "", /no output/],
    ["not JSON", 'Cannot find device "ntcc9"\n', /invalid JSON/],
    ["not an array", '{"kind":"fq"}', /expected a JSON array/],
    ["no kind", '[{"handle":"0:"}]', /"kind" is not a string/],
    ["handle a number", '[{"kind":"fq","handle":1}]', /"handle" is not a string/],
    ["options a list", '[{"kind":"fq","handle":"1:","options":[]}]', /"options" is not an object/],
  ])("%s", (_label, text, reason) => {
    let err: unknown;
    try {
      parseTcQdiscs(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ParseError);
    expect((err as ParseError).tool).toBe("tc -j qdisc show");
    expect((err as ParseError).message).toMatch(reason);
  });
});

describe("qdiscParameters: recreating a recorded root qdisc", () => {
  const root = (f: string) => parseTcQdiscs(tc(f), "ntcc0")[0]!;
  it.each([
    ["veth-pfifo-limit500.json", ["limit", "500"]],
    ["veth-bfifo.json", ["limit", "1514000"]],
    ["veth-pfifo_fast.json", []],
    ["veth-noqueue-explicit.json", []],
    ["veth-mq.json", []],
    ["veth-htb.json", ["r2q", "10", "default", "0x10", "direct_qlen", "1000"]],
    // -raw adds the exact limit in bytes; without it, the latency stands in.
    ["veth-tbf.raw.json", ["rate", "125000000bps", "burst", "262125", "limit", "6512144"]],
    ["veth-tbf.json", ["rate", "125000000bps", "burst", "262125", "latency", "50000us"]],
  ])("%s", (file, params) => {
    expect(qdiscParameters(root(file))).toEqual({ params, complete: true });
    // Every one renders as a valid command.
    const q = root(file);
    expect(renderTcQdiscReplace("ntcc0", q.kind, params, q.handle)).toEqual([
      "tc",
      "qdisc",
      "replace",
      "dev",
      "ntcc0",
      "root",
      "handle",
      q.handle,
      q.kind,
      ...params,
    ]);
  });

  it("says when settings cannot be carried over", () => {
    expect(qdiscParameters({ kind: "fq_codel", options: { limit: 10240, flows: 1024 } })).toEqual({
      params: [],
      complete: false,
    });
    expect(qdiscParameters({ kind: "tbf", options: { rate: "fast" } }).complete).toBe(false);
    expect(qdiscParameters({ kind: "cake", options: {} })).toEqual({ params: [], complete: true });
  });
});

describe("tc renderers", () => {
  it("render argument lists", () => {
    expect(renderTcQdiscShow()).toEqual(["tc", "-j", "-raw", "qdisc", "show"]);
    expect(renderTcQdiscShow("eth0")).toEqual(["tc", "-j", "-raw", "qdisc", "show", "dev", "eth0"]);
    expect(renderTcQdiscReplace("eth0", "fq")).toEqual([
      "tc",
      "qdisc",
      "replace",
      "dev",
      "eth0",
      "root",
      "fq",
    ]);
    expect(renderTcQdiscDelete("eth0")).toEqual(["tc", "qdisc", "del", "dev", "eth0", "root"]);
  });

  it.each([
    ["an interface with a space", () => renderTcQdiscReplace("eth0 reboot", "fq")],
    ["an option as interface", () => renderTcQdiscDelete("-force")],
    ["a kind with shell", () => renderTcQdiscReplace("eth0", "fq reboot")],
    ["a parameter with shell", () => renderTcQdiscReplace("eth0", "pfifo", ["limit", "1;id"])],
    ["a bad handle", () => renderTcQdiscReplace("eth0", "pfifo", [], "1")],
  ])("refuse %s", (_label, f) => {
    expect(f).toThrow(RangeError);
  });

  it("rootKindCheck reads the kind from tc's text output", () => {
    const check = (file: string, kind: string, dev = "ntcc0") => {
      try {
        execFileSync(
          "sh",
          ["-c", `tc() { cat ${path.join(TC, file)}; }\n${rootKindCheck(dev, kind)}`],
          {
            encoding: "utf8",
          },
        );
        return "ok";
      } catch (e) {
        return (e as { stdout: string }).stdout.trim();
      }
    };
    expect(check("veth-pfifo-limit500.txt", "pfifo")).toBe("ok");
    expect(check("veth-tbf.txt", "tbf")).toBe("ok");
    expect(check("veth-default.txt", "pfifo")).toBe(
      "the root qdisc of ntcc0 is noqueue afterwards",
    );
    // Interface names may hold shell characters: they stay words.
    expect(check("veth-default.txt", "pfifo", "x$(echo;id)`id`")).toBe(
      "the root qdisc of x$(echo;id)`id` is noqueue afterwards",
    );
  });
});

describe("what a host offers", () => {
  it("the sandbox kernel: fifo qdiscs, htb, tbf, ingress; no fq, fq_codel, netem", () => {
    const q = availableQdiscs(CONFIG, undefined, [], ["noqueue"]);
    expect(q.names).toEqual([
      "bfifo",
      "clsact",
      "htb",
      "ingress",
      "mq",
      "noqueue",
      "pfifo",
      "pfifo_fast",
      "pfifo_head_drop",
      "tbf",
    ]);
    expect(q.modules).toEqual({});
    expect(q.complete).toBe(true);
    expect(q.names).not.toContain("fq");
  });

  it("the sandbox kernel: reno, bbr and cubic, all built in", () => {
    const a = availableCongestionControl("reno bbr cubic", CONFIG, undefined, []);
    expect(a).toEqual({ names: ["bbr", "cubic", "reno"], modules: {}, complete: true });
  });

  it("modules: =m counts when installed, with its module; a loaded module needs loading at boot", () => {
    const config = [
      "CONFIG_TCP_CONG_CUBIC=y",
      "CONFIG_TCP_CONG_BBR=m",
      "CONFIG_TCP_CONG_VEGAS=m",
      "# CONFIG_TCP_CONG_HTCP is not set",
      "CONFIG_NET_SCH_FQ=m",
      "CONFIG_NET_SCH_FQ_CODEL=m",
      "CONFIG_NET_SCH_NETEM=m",
      "CONFIG_NET_SCH_HTB=y",
    ].join("\n");
    const loadable = [
      "kernel/net/ipv4/tcp_bbr.ko.xz",
      "kernel/net/ipv4/tcp_diag.ko.xz",
      "kernel/net/sched/sch_fq.ko.zst",
      "kernel/net/sched/sch_fq_codel.ko",
      "kernel/net/sched/sch_mqprio_lib.ko",
    ];
    const a = availableCongestionControl("reno cubic", config, [], loadable);
    // vegas is =m but not installed; tcp_diag is not an algorithm.
    expect(a.names).toEqual(["bbr", "cubic", "reno"]);
    expect(a.modules).toEqual({ bbr: "tcp_bbr" });
    const loaded = availableCongestionControl("reno cubic bbr", config, [], loadable, ["tcp_bbr"]);
    expect(loaded.modules).toEqual({ bbr: "tcp_bbr" });

    const q = availableQdiscs(config, [], loadable, []);
    expect(q.names).toEqual([...ALWAYS_QDISCS, "fq", "fq_codel", "htb"].sort());
    expect(q.modules).toEqual({ fq: "sch_fq", fq_codel: "sch_fq_codel" });
  });

  it("modules.builtin counts as built in; without config or builtin the list is not complete", () => {
    const q = availableQdiscs(undefined, ["kernel/net/sched/sch_fq_codel.ko"], undefined, []);
    expect(q.names).toContain("fq_codel");
    expect(q.modules).toEqual({});
    expect(q.complete).toBe(true);
    const unknown = availableQdiscs(undefined, undefined, undefined, ["fq"]);
    expect(unknown.complete).toBe(false);
    expect(unknown.names).toContain("fq");
    const cc = availableCongestionControl("reno cubic", undefined, undefined, undefined);
    expect(cc).toEqual({ names: ["cubic", "reno"], modules: {}, complete: false });
  });

  it("module names from paths", () => {
    expect(moduleName("kernel/net/sched/sch_fq.ko.zst")).toBe("sch_fq");
    expect(moduleName("tcp-bbr.ko")).toBe("tcp_bbr");
    expect(moduleName("sch_fq")).toBe("sch_fq");
  });

  it("qdiscs that cannot be set by name alone", () => {
    expect(unfitRootQdisc("tbf")).toMatch(/needs parameters/);
    expect(unfitRootQdisc("ingress")).toMatch(/not a transmit/);
    expect(unfitRootQdisc("mq")).toMatch(/multi-queue/);
    expect(unfitRootQdisc("plug")).toMatch(/stops all traffic/);
    for (const k of ["fq", "fq_codel", "pfifo_fast", "pfifo", "htb", "cake", "noqueue"])
      expect(unfitRootQdisc(k)).toBeUndefined();
  });
});

describe("the probe", () => {
  it("renders one read-only script naming each interface once", () => {
    const s = renderCongestionProbe(["eth0", "ntcc0"]);
    expect(s).not.toMatch(/qdisc (replace|del|add)|modprobe [st]|\btee\b|> *\/proc/);
    expect(s).toContain("tc -j -raw qdisc show dev eth0");
    expect(() => renderCongestionProbe(["../eth0"])).toThrow(RangeError);
  });

  it("reads this machine (its first network namespace: allowed is writable, default_qdisc exists)", () => {
    const p = parseCongestionProbe(cc("probe-machine-6.18.44-fc-v782.txt"), ["eth0", "lo"]);
    expect(p).toMatchObject({
      current: "bbr",
      available: "reno bbr cubic",
      allowed: "reno bbr",
      allowedWritable: true,
      defaultQdisc: "pfifo_fast",
      loadable: [],
      tools: ["tc", "modprobe", "bash", "ss", "systemctl"],
      kinds: ["noqueue", "pfifo_fast"],
    });
    expect(p.builtin).toBeUndefined();
    expect(p.loaded).toBeUndefined();
    expect(p.config).toContain("CONFIG_NET_SCH_TBF=y");
    expect(rootQdisc(p.interfaces.eth0!, "eth0")?.kind).toBe("pfifo_fast");
  });

  it("reads a sandbox host (a network namespace: allowed is read-only, no default_qdisc)", () => {
    const p = parseCongestionProbe(cc("probe-sandbox-host-6.18.44-fc-v782.txt"), [
      "eth0",
      "ntcc0",
      "ntcc1",
      "ntcc9",
    ]);
    expect(p.allowedWritable).toBe(false);
    expect(p.defaultQdisc).toBeUndefined();
    expect(p.kinds).toEqual(["ingress", "noqueue", "tbf"]);
    expect(p.interfaces.ntcc9).toBeNull();
    expect(rootQdisc(p.interfaces.ntcc0!, "ntcc0")).toMatchObject({
      kind: "tbf",
      handle: "8022:",
      options: { limit: 6512144 },
    });
    expect(p.interfaces.ntcc1!.map((q) => q.kind)).toEqual(["noqueue", "ingress"]);
  });

  it("gives a device that has never been up (tc lists no root for it) the kernel's noop root", () => {
    const p = parseCongestionProbe(cc("probe-down-bridge-6.18.44-fc-v669.txt"), ["tbr0", "tbr1"]);
    expect(p.interfaces.tbr0).toEqual([
      { kind: "noop", handle: "0:", dev: "tbr0", root: true, options: {} },
    ]);
    expect(isKernelDefault(rootQdisc(p.interfaces.tbr0!, "tbr0")!)).toBe(true);
    // A bridge that is up has the noqueue tc lists: nothing added.
    expect(p.interfaces.tbr1).toEqual([
      { kind: "noqueue", handle: "0:", dev: "tbr1", root: true, refcnt: 2, options: {} },
    ]);
  });

  it("refuses output that ended early", () => {
    const text = cc("probe-machine-6.18.44-fc-v782.txt");
    expect(() => parseCongestionProbe(text.slice(0, text.indexOf("== tools")), [])).toThrow(
      ParseError,
    );
  });
});

describe("the connection check", () => {
  it.each([
    ["ss-tine-bbr.txt", "bbr"],
    ["ss-tine-reno.txt", "reno"],
    ["observe-root.txt", "bbr"],
    ["observe-sudo.txt", "bbr"],
  ])("%s", (file, alg) => {
    expect(parseObservedAlgorithm(cc(file))).toBe(alg);
  });

  it("nothing seen", () => {
    expect(parseObservedAlgorithm("== observe\nnone\n")).toBeUndefined();
    // The socket was gone by the time ss looked.
    expect(parseObservedAlgorithm("== observe\nino 42\n")).toBeUndefined();
  });
});

describe("all-or-nothing steps", () => {
  const run = (script: string) => {
    try {
      return { stdout: execFileSync("sh", ["-c", script], { encoding: "utf8" }), code: 0 };
    } catch (e) {
      const x = e as { stdout: string; status: number };
      return { stdout: x.stdout, code: x.status };
    }
  };

  it("undo the failed step and what was done before it, in reverse order", () => {
    const r = run(
      renderSteps([
        { property: "a", action: "one", run: "echo did-1 >&2", undo: "echo undo-1 >&3" },
        { property: "b", action: "two", run: "true", undo: "echo undo-2 >&3" },
        { property: "c", action: "three", run: "echo 'it broke'; exit 7", undo: "echo undo-3 >&3" },
      ]).replace("set -f", "set -f; exec 3>&1"),
    );
    expect(r.code).toBe(3);
    expect(r.stdout.split("\n").filter(Boolean)).toEqual([
      "failed\t2\t7\tit broke",
      "undo-3",
      "undo-2",
      "undo-1",
    ]);
    expect(parseSteps(r.stdout, r.code)).toEqual({
      ok: false,
      kind: "failed",
      index: 2,
      status: 7,
      reason: "it broke",
    });
  });

  it("an undo that fails or exits does not stop the ones before it", () => {
    const r = run(
      renderSteps([
        { property: "a", action: "one", run: "true", undo: "echo undo-1 >&3" },
        { property: "b", action: "two", run: "true", undo: "exit 1" },
        { property: "c", action: "three", run: "exit 1", undo: "false" },
      ]).replace("set -f", "set -f; exec 3>&1"),
    );
    expect(r.code).toBe(3);
    expect(r.stdout.split("\n").filter(Boolean)).toEqual(["failed\t2\t1\t", "undo-1"]);
  });

  it("clean up and run the check after success", () => {
    const r = run(
      renderSteps([{ property: "a", action: "one", run: "true", cleanup: "echo cleaned >&3" }], {
        after: "echo checked",
      }).replace("set -f", "set -f; exec 3>&1"),
    );
    expect(r.stdout).toBe("cleaned\napplied\nchecked\n");
    expect(parseSteps(r.stdout, 0)).toEqual({
      ok: true,
      captured: {},
      journal: {},
      after: "checked\n",
    });
    expect(() => parseSteps("", 1)).toThrow(ParseError);
  });
});
