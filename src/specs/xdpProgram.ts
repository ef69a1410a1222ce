/**
 * XdpProgram: one XDP program on one interface, attached through the on-host loader
 * (tools/xdp-loader, src/host/xdpLoader.ts) as a bpf_link pinned under a per-resource folder of
 * bpffs (netlink where links are missing); an update swaps the link's program atomically.
 * nettune never detaches or replaces a program it did not attach, unless `takeOver` (the loader
 * pins the foreign program and destroy puts it back). The object and the loader stay on the host
 * and a systemd unit attaches the program again at boot; destroy removes them.
 *
 * The object arrives compiled (the resource class runs clang on the machine running Pulumi) as
 * base64 with its sha256, the input the diff sees.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { xdpProgramSchema, NOT_ATTACHED, type XdpProgramInputs } from "../schemas/xdpProgram";
import { parseEthtoolFeatures, renderEthtoolShow, type EthtoolFeatures } from "../host/ethtool";
import {
  LOADER_HOST_PATH,
  parseAttach,
  parseDetach,
  parseRestore,
  parseShow,
  parseTakeover,
  canonicalJson,
  renderAttach,
  renderDetach,
  renderRestore,
  renderShow,
  renderTakeover,
  XdpLoaderError,
  type AttachResult,
  type ShowResult,
  type XdpMode,
} from "../host/xdpLoader";
import {
  APPLY_EXIT,
  hasFragsSection,
  parseIpXdp,
  renderBootAttach,
  renderCleanup,
  renderLoaderUpload,
  renderObjectUpload,
  renderRunRollback,
  renderXdpApply,
  renderXdpRollback,
  renderXdpSettle,
  pinIdOf,
  xdpMtuLimit,
  xdpPaths,
  type IpXdp,
} from "../host/xdpProgram";
import { renderUnitInstall } from "../host/systemd";
import { DEFAULT_ROLLBACK_AFTER } from "../schemas/link";
import {
  AnswerLost,
  applyConfirmed,
  ManagementPathError,
  renderDisarm,
  rollbackUnit,
} from "./confirm";
import { isScript, renderCommand, shellQuote } from "../transport/quote";
import type { Transport } from "../transport/types";
import { execOnceMoreIfLost, messageOf, runBatch, type StepResult } from "../engine/batch";
import type { Failure } from "../engine/lifecycle";
import { handlerOf, type Spec, type SpecContext } from "../engine/spec";
import * as link from "./link";

/** The program attached, as the outputs show it. */
export interface XdpAttached {
  progId: number;
  /** The bpf_link holding it; null when attached through netlink. */
  linkId: number | null;
  tag: string;
  /** The kernel's name of the program (at most 15 characters). */
  name: string;
  mode: XdpMode;
  via: "link" | "netlink";
}

/** A program nettune took over (`takeOver: true`), put back on destroy. */
export interface XdpTakenOver {
  progId: number;
  name: string;
  tag: string;
  mode: XdpMode;
}

export interface XdpProgramOutputs extends XdpProgramInputs {
  /** The attached program; absent after a refresh that found it gone. */
  attached?: XdpAttached;
  /** The object's maps, pinned under `<pinDir>/maps/<name>`. */
  maps: string[];
  pinDir: string;
  /** The object on the host, attached again at boot. */
  objectPath: string;
  /** The unit that attaches the program at boot, or null with `persist: false`. */
  unitPath: string | null;
  takenOver: XdpTakenOver | null;
  warnings: string[];
}

/** A program on the interface, as the loader's `show` (or, without the loader, `ip`) reports it. */
interface Occupant {
  readonly progId: number;
  readonly name: string;
  readonly tag: string;
  readonly mode: XdpMode;
  readonly linkId: number | null;
  /** nettune's pin holding it, or null. */
  readonly pinned: string | null;
}

interface Own {
  /** sha256 of the loader on the host; null when there is none. */
  readonly loaderSha: string | null;
  /** The loader's `show`; null without a loader. */
  readonly show: ShowResult | null;
  readonly ip: IpXdp;
  readonly features: EthtoolFeatures | undefined;
  readonly pageSize: number;
  /** `uname -r`: virtio_net's MTU limit depends on it. */
  readonly kernel?: string;
}
type Facts = link.LinkFacts<Own>;

// ---------------------------------------------------------------------------------------------
// The loader on this machine

let localLoader: { path: string; sha256: string } | undefined;

/**
 * The loader binary to copy to hosts: `NETTUNE_XDP_LOADER`, else the package's
 * `dist/bin/xdp-loader`, else a checkout's `.tools/bin/xdp-loader` (built by scripts/setup.sh).
 */
export function findLocalLoader(env: NodeJS.ProcessEnv = process.env): {
  path: string;
  sha256: string;
} {
  if (localLoader) return localLoader;
  // This file is dist/src/specs/xdpProgram.js in the package and in a checkout's build.
  const candidates = [
    env.NETTUNE_XDP_LOADER,
    path.resolve(__dirname, "../../bin/xdp-loader"),
    path.resolve(__dirname, "../../../.tools/bin/xdp-loader"),
  ].filter((p): p is string => typeof p === "string" && p !== "");
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) {
    throw new Error(
      `the xdp-loader binary is missing (looked for ${candidates.join(", ")}): nettune's package ships it ` +
        "at dist/bin/xdp-loader; in a checkout, `npm run setup` builds it; or set NETTUNE_XDP_LOADER",
    );
  }
  const sha256 = createHash("sha256").update(fs.readFileSync(found)).digest("hex");
  localLoader = { path: found, sha256 };
  return localLoader;
}

// ---------------------------------------------------------------------------------------------
// Reading

const paths = (inputs: Pick<XdpProgramInputs, "unitName">) => xdpPaths(inputs.unitName);

function probeCommands(ifname: string) {
  const show = renderCommand(renderShow(ifname));
  const loader = shellQuote(LOADER_HOST_PATH);
  return [
    { script: `if [ -f ${loader} ]; then sha256sum ${loader} | cut -c1-64; fi` },
    { script: `if [ -x ${loader} ]; then ${show}; else echo none; fi` },
    ["ip", "-d", "-j", "link", "show"],
    renderEthtoolShow("features", ifname),
    ["getconf", "PAGESIZE"],
    ["uname", "-r"],
  ];
}

function readOwn(ifname: string, target: string, steps: readonly StepResult[]): Own {
  const [sha, show, ip, features, page, uname] = steps;
  if (!sha || !show || !ip || !features || !page)
    throw new Error("xdpProgram: a read step is missing");
  if (ip.exitCode !== 0) throw new Error(`cannot read the links of ${target}: ${messageOf(ip)}`);
  const loaderSha = sha.stdout.trim() || null;
  let shown: ShowResult | null = null;
  if (show.stdout.trim() !== "none") {
    try {
      shown = parseShow(show.stdout);
    } catch {
      // An older or broken loader: `ip` still tells what is attached, and apply replaces it.
      shown = null;
    }
  }
  let feats: EthtoolFeatures | undefined;
  try {
    feats = features.exitCode === 0 ? parseEthtoolFeatures(features.stdout) : undefined;
  } catch {
    feats = undefined;
  }
  return {
    loaderSha,
    show: shown,
    ip: parseIpXdp(ip.stdout, ifname),
    features: feats,
    pageSize: Number(page.stdout.trim()) || 4096,
    ...(uname?.exitCode === 0 && uname.stdout.trim() !== "" ? { kernel: uname.stdout.trim() } : {}),
  };
}

function occupants(own: Own): Occupant[] {
  if (own.show) return own.show.programs.map((p) => ({ ...p }));
  return own.ip.programs.map((p) => ({ ...p, linkId: null, pinned: null }));
}

const isOurs = (o: Occupant, inputs: Pick<XdpProgramInputs, "unitName">) => {
  const dir = paths(inputs).pinDir;
  return o.pinned === `${dir}/link` || o.pinned === `${dir}/prog`;
};

/** The program of nettune's pin dir, and any other in the slot `mode` attaches to. */
function slot(own: Own, inputs: Pick<XdpProgramInputs, "unitName" | "mode">) {
  const all = occupants(own);
  const inSlot = all.filter((o) => (inputs.mode === "hw" ? o.mode === "hw" : o.mode !== "hw"));
  return {
    ours: all.find((o) => isOurs(o, inputs)),
    foreign: inSlot.find((o) => !isOurs(o, inputs)),
  };
}

/** `program 42 "xdp_foreign" (tag 614b434cd8324ecc, generic mode)`. */
export function describeProgram(o: Pick<Occupant, "progId" | "name" | "tag" | "mode">): string {
  return `program ${o.progId} ${JSON.stringify(o.name)} (tag ${o.tag || "unknown"}, ${o.mode} mode)`;
}

const OFF: Record<XdpMode, string> = { native: "xdpdrv", generic: "xdpgeneric", hw: "xdpoffload" };

/** What the host cannot take, by field. */
export function checkXdp(inputs: XdpProgramInputs, facts: Facts): Failure[] {
  const { info, own } = facts;
  const where = link.describeLink(info);
  const failures: Failure[] = [];
  const { foreign } = slot(own, inputs);
  if (foreign && !inputs.takeOver) {
    failures.push({
      property: "interface",
      reason:
        `${where} has ${describeProgram(foreign)} attached, which nettune did not attach; nettune never ` +
        `detaches or replaces it: detach it yourself (ip link set dev ${info.ifname} ${OFF[foreign.mode]} off), ` +
        "or set takeOver: true to replace it (destroy puts it back)",
    });
  } else if (foreign && foreign.linkId !== null) {
    failures.push({
      property: "takeOver",
      reason: `${describeProgram(foreign)} on ${where} is held by bpf_link ${foreign.linkId} of another program: it cannot be taken over; its owner must detach it`,
    });
  }
  if (inputs.mode === "hw" && !["nfp", "netdevsim"].includes(info.driver)) {
    failures.push({
      property: "mode",
      reason: `${where} cannot run offloaded (hw) XDP programs (only nfp and netdevsim NICs can): use "native" or "generic"`,
    });
  }
  if (inputs.mode === "native") {
    const frags =
      inputs.objectBase64 !== "" && hasFragsSection(Buffer.from(inputs.objectBase64, "base64"));
    const limit = xdpMtuLimit(info.driver, own.pageSize, own.kernel, frags);
    const peer = own.ip.peer;
    const subject =
      limit?.of === "peer"
        ? peer && { name: `its peer ${peer.ifname}`, dev: peer.ifname, mtu: peer.mtu }
        : { name: info.ifname, dev: info.ifname, mtu: info.link.mtu };
    if (limit && subject && subject.mtu > limit.max) {
      failures.push({
        property: "interface",
        reason:
          `native XDP on ${where} needs ${limit.of === "peer" ? `${subject.name}'s MTU` : "an MTU"} of at most ${limit.max} ` +
          `for single-buffer programs (${limit.formula}); ${subject.dev} has MTU ${subject.mtu}: ` +
          `lower it (ip link set dev ${subject.dev} mtu ${limit.max}, or an Mtu resource) or use mode: "generic"`,
      });
    }
    const gro = own.features?.features["rx-gro-hw"];
    if (info.driver === "virtio_net" && gro?.on && gro.fixed) {
      failures.push({
        property: "mode",
        reason:
          `${where} receives with the hypervisor's guest offloads on (rx-gro-hw: on [fixed]) and cannot turn them off ` +
          "(no VIRTIO_NET_F_CTRL_GUEST_OFFLOADS): virtio_net refuses native XDP; turn off guest_tso4, guest_tso6, " +
          'guest_ecn, guest_ufo and guest_csum on the VM\'s NIC, or use mode: "generic"',
      });
    }
  }
  return failures;
}

// ---------------------------------------------------------------------------------------------
// Applying

/** An error of the loader in words, with what to do. */
function loaderFailure(err: XdpLoaderError, inputs: XdpProgramInputs, target: string): Error {
  const where = `${inputs.interface} on ${target}`;
  const extra = err.extra;
  switch (err.code) {
    case "mtu-too-large":
      return new Error(
        `the driver ${typeof extra.driver === "string" ? `${extra.driver} ` : ""}refuses native XDP on ${where} at MTU ` +
          `${typeof extra.mtu === "number" ? extra.mtu : "?"} (a veth checks its peer's MTU): lower the MTU or use mode: "generic". ` +
          `The loader said: ${err.message}`,
      );
    case "verifier":
      return new Error(
        `the kernel's verifier refused ${inputs.programName} on ${where}: ${err.message}` +
          (Array.isArray(extra.log) ? `\n${(extra.log as string[]).join("\n")}` : ""),
      );
    case "no-such-program":
      return new Error(
        `programName: the object has no XDP program ${JSON.stringify(inputs.programName)}` +
          (Array.isArray(extra.programs)
            ? ` (its XDP programs: ${(extra.programs as string[]).join(", ") || "none"})`
            : ""),
      );
    case "bad-constant":
      return new Error(
        `constants: ${err.message.replace(/^xdp-loader: | \(bad-constant\)$/g, "")}` +
          (Array.isArray(extra.constants)
            ? ` (the object's constants: ${(extra.constants as string[]).join(", ") || "none"})`
            : "") +
          "; nothing was attached",
      );
    case "foreign-program":
      return new Error(
        `${where}: another program was attached meanwhile${typeof extra.progId === "number" ? ` (program ${extra.progId})` : ""}; nothing was changed: ${err.message}`,
      );
  }
  return new Error(`${where}: ${err.message}`);
}

async function loaderRun<T>(
  t: Transport,
  argv: string[],
  parse: (stdout: string) => T,
): Promise<T> {
  const r = await t.exec(argv, { allowFailure: true });
  try {
    return parse(r.stdout);
  } catch (err) {
    if (err instanceof XdpLoaderError) throw err;
    throw new Error(
      `xdp-loader on ${t.target} (exit ${r.exitCode}): ${r.stderr.trim() || r.stdout.trim() || (err as Error).message}`,
    );
  }
}

/** Copies the loader to the host when the one there differs (the probe read its sha256). */
async function ensureLoader(t: Transport, own: Own): Promise<void> {
  const local = findLocalLoader();
  if (own.loaderSha === local.sha256) return;
  const data = fs.readFileSync(local.path).toString("base64");
  const r = await t.exec(
    { script: renderLoaderUpload(local.sha256) },
    { stdin: data, allowFailure: true, timeoutMs: 300_000 },
  );
  if (r.exitCode !== 0)
    throw new Error(
      `could not copy xdp-loader to ${t.target}: ${r.stderr.trim() || `exit ${r.exitCode}`}`,
    );
}

function objectOf(inputs: XdpProgramInputs): string {
  if (inputs.objectBase64 === "")
    throw new Error("objectBase64: the object is missing from the inputs (run the program again)");
  const sha = createHash("sha256").update(Buffer.from(inputs.objectBase64, "base64")).digest("hex");
  if (sha !== inputs.objectSha256)
    throw new Error(`objectSha256: the object's sha256 is ${sha}, not ${inputs.objectSha256}`);
  return inputs.objectBase64;
}

function unitOf(inputs: XdpProgramInputs) {
  const p = paths(inputs);
  return link.linkUnit(inputs, `nettune XdpProgram ${inputs.programName} on ${inputs.interface}`, [
    renderBootAttach({
      dev: inputs.interface,
      object: p.object,
      prog: inputs.programName,
      mode: inputs.mode,
      pinDir: p.pinDir,
      constants: inputs.constants,
    }),
  ]);
}

const attachedOf = (a: AttachResult): XdpAttached => ({
  progId: a.progId,
  linkId: a.linkId,
  tag: a.tag,
  name: a.name,
  mode: a.mode,
  via: a.via,
});

const fromOccupant = (o: Occupant): XdpAttached => ({
  progId: o.progId,
  linkId: o.linkId,
  tag: o.tag,
  name: o.name,
  mode: o.mode,
  via: o.linkId === null ? "netlink" : "link",
});

/** The commit-confirmed rollback of a resource's attach (./confirm.ts), one per resource. */
const tokenOf = (inputs: Pick<XdpProgramInputs, "unitName">) => `xdp-${pinIdOf(inputs.unitName)}`;

/** The loader's JSON line among the lines an apply script printed. */
const jsonLine = (stdout: string) =>
  stdout.split("\n").find((l) => l.trimStart().startsWith("{")) ?? "";

/** Runs a script on the pooled connection, once more if the connection was lost. */
const execAgain = execOnceMoreIfLost;

/**
 * Attaches the uploaded object (`<object>.new`) and installs the boot unit in one script,
 * commit-confirmed when the SSH session arrives on the interface: the host's own timer, armed
 * in the same script, runs `rollback` unless a new SSH connection confirms within
 * `rollbackAfter` s. A failure on a reachable host is undone at once.
 */
async function attachConfirmed(
  t: Transport,
  news: XdpProgramInputs,
  attachArgv: string[],
  persist: string[],
  rollback: string,
  undone: string,
): Promise<AttachResult> {
  const describe = `XDP program ${news.programName} on ${news.interface}`;
  const apply = renderXdpApply({ unitName: news.unitName, attach: attachArgv, persist, rollback });
  const runRollback = renderRunRollback(news.unitName);
  const token = tokenOf(news);
  const p = paths(news);
  const dropMarks = () =>
    execAgain(t, `rm -f ${shellQuote(p.rolledBack)} ${shellQuote(p.rollbackScript)}`).catch(
      () => undefined,
    );
  const started = Date.now();
  let res;
  try {
    res = await applyConfirmed(
      t,
      news.connection,
      { rollbackAfter: news.rollbackAfter, token, rollback: runRollback, apply },
      describe,
      { onlyIfSshOver: news.interface },
    );
  } catch (err) {
    if (!(err instanceof ManagementPathError)) throw err;
    // The host is reachable again when the rollback ran: its marks go (best effort).
    await dropMarks();
    throw new Error(`${err.message} ${undone}`);
  }
  if (res instanceof AnswerLost) {
    // No answer, yet a new connection got through and ran the rollback: if the timer was due
    // by then, the host had undone the change by itself (the path was cut until it did).
    await dropMarks();
    if (Date.now() - started >= news.rollbackAfter * 1000)
      throw new Error(
        `${describe} cut the SSH connection to ${t.target}: its answer never came back. ` +
          `The host undid the change by itself after ${news.rollbackAfter} s (commit-confirmed rollback) and is reachable again. ${undone}`,
      );
    throw new Error(
      `the answer to attaching ${describe} on ${t.target} was lost (${res.reason}); the host is reachable, and the change was rolled back (${undone})`,
    );
  }
  const armed = /^armed /m.test(res.stdout);
  if (res.exitCode !== 0) {
    // Armed, applyConfirmed ran the rollback already; unarmed, it is run here (it acts only
    // when the attach went through).
    if (!armed) await t.exec({ script: runRollback }, { allowFailure: true });
    await t.exec(
      {
        script: `rm -f ${shellQuote(`${p.object}.new`)} ${shellQuote(p.previous)} ${shellQuote(p.rollbackScript)} ${shellQuote(p.rolledBack)}`,
      },
      { allowFailure: true },
    );
    if (res.exitCode === APPLY_EXIT.attach) return parseAttach(jsonLine(res.stdout));
    if (res.exitCode === APPLY_EXIT.move || res.exitCode === APPLY_EXIT.persist)
      throw new Error(
        `persist: could not install the object and boot unit on ${t.target}: ${res.stderr.trim() || `exit ${res.exitCode}`}; the change was undone (${undone})`,
      );
    throw new Error(
      `${describe} on ${t.target} failed (exit ${res.exitCode ?? "?"}): ${res.stderr.trim() || res.stdout.trim()}`,
    );
  }
  const attached = parseAttach(jsonLine(res.stdout));
  // The answer may have come through only once the host's own rollback restored the path:
  // the rolled-back mark says so.
  const settle = await execAgain(t, renderXdpSettle(news.unitName, rollbackUnit(token)));
  if (settle.stdout.trim() === "rolledback") {
    throw new Error(
      `${describe} cut the SSH connection to ${t.target}: it could not be confirmed in time. ` +
        `The host undid the change by itself after ${news.rollbackAfter} s (commit-confirmed rollback) and is reachable again. ${undone}`,
    );
  }
  return attached;
}

async function applyXdp(
  ctx: SpecContext,
  facts: Facts,
  olds: XdpProgramOutputs | undefined,
  news: XdpProgramInputs,
): Promise<Omit<XdpProgramOutputs, keyof XdpProgramInputs>> {
  const t = ctx.transport;
  const p = paths(news);
  const { ours, foreign } = slot(facts.own, news);
  const same =
    olds !== undefined &&
    ours !== undefined &&
    olds.objectSha256 === news.objectSha256 &&
    olds.programName === news.programName &&
    canonicalJson(olds.constants ?? {}) === canonicalJson(news.constants) &&
    olds.attached?.tag === ours.tag;
  const object = same ? undefined : objectOf(news);
  await ensureLoader(t, facts.own);

  const unit = news.persist ? unitOf(news) : undefined;
  const oldUnit = olds?.persist ? [olds.unitName] : [];
  let attached: XdpAttached;
  let maps = olds?.maps ?? [];
  let takenOver = olds?.takenOver ?? null;
  if (object === undefined) {
    attached = fromOccupant(ours!);
    const out = await runBatch(t, link.persistCommands(unit, oldUnit));
    const failed = out.find((s) => s.exitCode !== 0);
    if (failed)
      throw new Error(
        `persist: could not install the boot unit on ${t.target}: ${messageOf(failed)}; the program stays attached`,
      );
  } else {
    const up = await t.exec(
      { script: renderObjectUpload(p.object, news.objectSha256) },
      { stdin: object, allowFailure: true, timeoutMs: 120_000 },
    );
    if (up.exitCode !== 0)
      throw new Error(`could not copy the object to ${t.target}: ${up.stderr.trim()}`);
    let replaceProgId: number | undefined;
    if (foreign && news.takeOver) {
      const saved = await loaderRun(t, renderTakeover(news.interface, p.saveDir), parseTakeover);
      takenOver = { progId: saved.progId, name: saved.name, tag: saved.tag, mode: saved.mode };
      replaceProgId = saved.progId;
      if (saved.mode !== news.mode)
        throw new Error(
          `takeOver: ${describeProgram(saved)} on ${news.interface} is in ${saved.mode} mode; an atomic replacement needs the same mode: set mode: "${saved.mode}"`,
        );
    }
    // What a rollback puts back: nettune's previous program through the same link, the
    // taken-over one, or nothing; and the boot unit as it was.
    const previous = ours !== undefined && olds !== undefined ? olds : undefined;
    const rollback = renderXdpRollback({
      dev: news.interface,
      mode: news.mode,
      unitName: news.unitName,
      ...(previous
        ? { previousProgram: previous.programName, previousConstants: previous.constants ?? {} }
        : {}),
      ...(replaceProgId !== undefined ? { tookOver: true } : {}),
      ...(olds?.persist ? { unitInstall: renderUnitInstall(unitOf(olds)) } : {}),
    });
    const undone = previous
      ? `The rollback attached the previous program (${previous.programName}, tag ${ours!.tag}) again and put its boot unit back.`
      : replaceProgId !== undefined
        ? `The rollback put ${describeProgram(takenOver!)} back.`
        : "The rollback detached the program and removed its boot unit and object.";
    const attachArgv = renderAttach({
      dev: news.interface,
      obj: `${p.object}.new`,
      prog: news.programName,
      mode: news.mode,
      pinDir: p.pinDir,
      constants: news.constants,
      ...(replaceProgId === undefined ? {} : { replaceProgId }),
    });
    const persist = link
      .persistCommands(unit, oldUnit)
      .map((c) => (isScript(c) ? c.script : renderCommand(c)));
    try {
      const res = await attachConfirmed(t, news, attachArgv, persist, rollback, undone);
      attached = attachedOf(res);
      maps = [...res.maps];
      if (res.linkFallback) ctx.warn(`attached through netlink: ${res.linkFallback}`);
    } catch (err) {
      if (replaceProgId !== undefined && !olds?.takenOver)
        await t.exec({ script: `rm -rf ${shellQuote(p.saveDir)}` }, { allowFailure: true });
      if (err instanceof XdpLoaderError) throw loaderFailure(err, news, t.target);
      throw err;
    }
  }
  return {
    attached,
    maps,
    pinDir: p.pinDir,
    objectPath: p.object,
    unitPath: unit ? link.unitPathOf(unit.name) : null,
    takenOver,
    // The blob stays out of the state's outputs: an update brings its own.
    ...({ objectBase64: "" } as object),
    warnings: [],
  };
}

async function releaseXdp(ctx: SpecContext, facts: Facts | undefined, olds: XdpProgramOutputs) {
  const t = ctx.transport;
  const p = paths(olds);
  const hasLoader = facts?.own.loaderSha != null;
  if (facts && hasLoader) {
    // After the taken-over program is back on the interface, ours is no longer attached: the
    // detach below then only clears our pins, and its "not ours" is expected.
    let restored = false;
    try {
      if (olds.takenOver) {
        const r = await loaderRun(
          t,
          renderRestore(olds.interface, p.saveDir, p.pinDir),
          parseRestore,
        );
        restored = !r.alreadyGone;
        if (r.alreadyGone)
          ctx.warn(
            `${describeProgram(olds.takenOver)}, which nettune took over on ${olds.interface}, is no longer saved (a reboot?): it cannot be put back`,
          );
      }
      await loaderRun(t, renderDetach(olds.interface, p.pinDir), parseDetach);
    } catch (err) {
      if (!(err instanceof XdpLoaderError)) throw err;
      if (err.code === "not-ours" && restored) {
        // The program there is the one nettune just put back.
      } else if (err.code === "not-ours")
        ctx.warn(
          `${olds.interface} on ${t.target} has a program nettune did not attach; it was left alone (${err.message})`,
        );
      else
        throw new Error(`could not detach from ${olds.interface} on ${t.target}: ${err.message}`);
    }
  }
  const out = await runBatch(t, [
    // A rollback left armed by an interrupted apply must not fire later.
    { script: `{ ${renderDisarm(tokenOf(olds))}\n} >/dev/null 2>&1` },
    ...link.persistCommands(undefined, [olds.unitName]),
    { script: renderCleanup(olds.unitName) },
    { script: `rm -rf ${shellQuote(p.saveDir)}` },
  ]);
  const failed = out.find((s) => s.exitCode !== 0);
  if (failed)
    throw new Error(`could not remove nettune's XDP files on ${t.target}: ${messageOf(failed)}`);
}

export const xdpProgramSpec: Spec<XdpProgramInputs, XdpProgramOutputs, Facts> = {
  kind: "XdpProgram",
  schema: xdpProgramSchema,
  // No atomic mode change: another mode is detach, then attach.
  replaceOn: [...link.LINK_REPLACE_ON, "mode"],
  shows: (field, olds, news) => field !== "objectBase64" && link.linkShows(field, olds, news),
  // The blob is not in the state: the same sha256 is the same object.
  normalize: (olds, news) =>
    olds.objectSha256 === news.objectSha256 ? { ...news, objectBase64: olds.objectBase64 } : news,
  outputs: ["attached", "maps", "pinDir", "objectPath", "unitPath", "takenOver"],
  // State written before rollbackAfter existed holds none: it had the default.
  migrate: (state) => ({
    ...state,
    rollbackAfter: (state as Partial<XdpProgramOutputs>).rollbackAfter ?? DEFAULT_ROLLBACK_AFTER,
    // State written before constants existed: the program had none.
    constants: (state as Partial<XdpProgramOutputs>).constants ?? {},
  }),
  id: (inputs) => link.linkPath("xdp", inputs),

  probe: (t, inputs) =>
    link.probeLink(t, inputs.interface, probeCommands(inputs.interface), (steps) =>
      readOwn(inputs.interface, t.target, steps),
    ),

  check: (inputs, facts) => checkXdp(inputs, facts),
  apply: (ctx, facts, olds, news) => applyXdp(ctx, facts, olds, news),
  release: (ctx, facts, olds) => releaseXdp(ctx, facts, olds),

  live(olds, facts) {
    const ours = facts ? slot(facts.own, olds).ours : undefined;
    const same = ours !== undefined && ours.tag === olds.attached?.tag;
    return {
      objectSha256: same ? olds.objectSha256 : NOT_ATTACHED,
      attached: same ? fromOccupant(ours) : undefined,
    } as Partial<XdpProgramInputs>;
  },
};

export const xdpProgramHandler = handlerOf(xdpProgramSpec);
