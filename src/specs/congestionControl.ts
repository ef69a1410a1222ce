/**
 * CongestionControl: the TCP congestion control algorithm of new connections and the qdisc that
 * goes with it (net.core.default_qdisc and the root qdisc of listed interfaces), applied
 * all-or-nothing, persisted (sysctl.d, modules-load.d, a systemd unit per interface), verified
 * on a new connection, and restored on delete.
 */
import {
  congestionControlSchema,
  type CongestionControlInputs,
  type SavedQdisc,
} from "../schemas/congestionControl";
import {
  CC_KEY,
  DEFAULT_QDISC_KEY,
  parseCongestionProbe,
  parseObservedAlgorithm,
  renderCongestionProbe,
  renderModulesLoadConf,
  renderObserveConnection,
  rootKindCheck,
  type CongestionProbe,
} from "../host/congestion";
import * as protocol from "../host/steps";
import { SYSCTL_D, renderSysctlConf } from "../host/sysctl";
import {
  renderLinkUnit,
  renderUnitInstall,
  renderUnitRemove,
  unitName,
  unitNameOfPath,
  unitPathOf,
  type LinkUnit,
} from "../host/systemd";
import {
  availableCongestionControl,
  availableQdiscs,
  childQdiscs,
  isKernelDefault,
  qdiscParameters,
  renderTcQdiscDelete,
  renderTcQdiscReplace,
  rootQdisc,
  unfitRootQdisc,
  type Offer,
  type TcQdisc,
} from "../host/tc";
import { renderCommand } from "../transport/quote";
import type { Transport } from "../transport/types";
import { stableJson, type Failure } from "../engine/lifecycle";
import { restoreOrWarn } from "../engine/restore";
import { handlerOf, type Spec } from "../engine/spec";

export const MODULES_LOAD_D = "/etc/modules-load.d";

export interface CongestionControlOutputs extends CongestionControlInputs {
  /** What the host had before nettune first set it; put back on delete. */
  originals: {
    /** net.ipv4.tcp_congestion_control. */
    algorithm: string;
    /** net.core.default_qdisc; null when nettune does not set it. */
    defaultQdisc: string | null;
    /** Each listed interface's root qdisc. */
    qdiscs: Record<string, SavedQdisc>;
  };
  /** What nettune set. */
  applied: {
    algorithm: string;
    /** The default qdisc nettune set, or null. */
    defaultQdisc: string | null;
    /** The root qdisc nettune gave the listed interfaces, or null. */
    qdisc: string | null;
  };
  /** The live root qdisc kind of each listed interface. */
  rootQdiscs: Record<string, string>;
  /** Kernel modules loaded for the algorithm or qdisc (listed in the modules-load.d file). */
  modules: string[];
  /** The sysctl.d file this resource owns, or null without persist. */
  filePath: string | null;
  /** The modules-load.d file this resource owns, or null. */
  modulesFilePath: string | null;
  /** The systemd units (their files) that set the interfaces' root qdisc at boot. */
  unitPaths: string[];
  /** The algorithm a TCP connection opened on the host after applying got, or null if unseen. */
  observedAlgorithm: string | null;
  /** Messages from the last operation the user should read. */
  warnings: string[];
}

export const safeName = (name: string) => name.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 100);
export const sysctlFileOf = (resourceName: string) =>
  `${SYSCTL_D}/90-nettune-congestion-${safeName(resourceName)}.conf`;
export const modulesFileOf = (resourceName: string) =>
  `${MODULES_LOAD_D}/nettune-${safeName(resourceName)}.conf`;

/**
 * The resource's journal of originals on the host (src/host/steps.ts): written by create before
 * its first change (or by cloud-init at first boot, src/resources/cloudInit.ts), read by a create
 * that finds it (an earlier create whose answer was lost, or cloud-init's), removed by delete.
 */
export const journalPathOf = (resourceName: string) =>
  `${protocol.JOURNAL_DIR}/cc-${safeName(resourceName)}`;

/** The journal's keys: the algorithm, the default qdisc, an interface's root qdisc (JSON). */
export const JOURNAL = {
  algorithm: "algorithm",
  defaultQdisc: "defaultQdisc",
  qdisc: (dev: string) => `qdisc ${dev}`,
} as const;

type Originals = CongestionControlOutputs["originals"];

/** Originals as the journal holds them. */
function journalValues(o: Originals): Record<string, string> {
  const values: Record<string, string> = { [JOURNAL.algorithm]: o.algorithm };
  if (o.defaultQdisc !== null) values[JOURNAL.defaultQdisc] = o.defaultQdisc;
  for (const [dev, q] of Object.entries(o.qdiscs)) values[JOURNAL.qdisc(dev)] = JSON.stringify(q);
  return values;
}

/**
 * The originals with what a journal that was there already holds: its values were read before
 * nettune (or cloud-init) first changed anything. A value it lacks, or cannot give, stays.
 */
export function withJournal(o: Originals, journal: Readonly<Record<string, string>>): Originals {
  const qdiscs = { ...o.qdiscs };
  for (const dev of Object.keys(qdiscs)) {
    const text = journal[JOURNAL.qdisc(dev)];
    if (text === undefined) continue;
    try {
      const q = JSON.parse(text) as SavedQdisc;
      if (typeof q.kind === "string" && typeof q.handle === "string") qdiscs[dev] = q;
    } catch {
      /* not JSON: the live one stays */
    }
  }
  return {
    algorithm: journal[JOURNAL.algorithm] || o.algorithm,
    defaultQdisc: o.defaultQdisc === null ? null : journal[JOURNAL.defaultQdisc] || o.defaultQdisc,
    qdiscs,
  };
}

interface Facts {
  readonly probe: CongestionProbe;
  /** On refresh: the algorithm a new TCP connection got, or null when none could be opened. */
  readonly observed?: string | null;
}

function ccOffer(p: CongestionProbe): Offer {
  return availableCongestionControl(p.available, p.config, p.builtin, p.loadable, p.loaded);
}
function qdiscOffer(p: CongestionProbe): Offer {
  return availableQdiscs(p.config, p.builtin, p.loadable, p.kinds);
}
const words = (s: string) => s.split(/\s+/).filter(Boolean);

/** Algorithms this host may set: inside a network namespace, only the machine's allowed ones. */
function settableAlgorithms(p: CongestionProbe, offer: Offer): string[] {
  if (p.allowedWritable) return offer.names;
  const allowed = new Set(words(p.allowed));
  return offer.names.filter((n) => allowed.has(n));
}

function isLoaded(p: CongestionProbe, mod: string): boolean {
  if (mod.startsWith("tcp_")) return words(p.available).includes(mod.slice(4));
  return (p.loaded ?? []).includes(mod) || p.kinds.some((k) => `sch_${k}` === mod);
}

/** Why this host cannot take `kind` as the qdisc of `inputs`, under the input `property`. */
function qdiscFailures(
  kind: string,
  property: string,
  inputs: CongestionControlInputs,
  p: CongestionProbe,
  target: string,
): Failure[] {
  const failures: Failure[] = [];
  const q = qdiscOffer(p);
  const fit = q.names.filter((n) => !unfitRootQdisc(n));
  const qmod = q.modules[kind];
  if (q.complete && !q.names.includes(kind)) {
    failures.push({
      property,
      reason: `${kind} is not available on ${target}; available: ${fit.join(" ")}`,
    });
  } else if (qmod && !isLoaded(p, qmod) && !p.tools.includes("modprobe")) {
    failures.push({
      property,
      reason: `${kind} comes as the module ${qmod}, which is not loaded, and ${target} has no modprobe (install kmod)`,
    });
  }
  if (p.defaultQdisc === undefined && inputs.interfaces.length === 0) {
    failures.push({
      property,
      reason:
        `${DEFAULT_QDISC_KEY} does not exist on ${target}: it is kernel-wide and absent inside a network ` +
        `namespace (a container); list the interfaces whose root qdisc to replace, or leave qdisc out`,
    });
  }
  return failures;
}

/**
 * The qdisc this host gets: `qdisc`, or where the host cannot take it and `qdiscFallback` is
 * set, the fallback (`"none"`: no qdisc at all, the algorithm runs alone). `note` says what was
 * chosen instead and why; `failures` are what stops the resource.
 */
export function chooseQdisc(
  inputs: CongestionControlInputs,
  p: CongestionProbe,
  target: string,
): { qdisc: string | undefined; failures: Failure[]; note?: string } {
  if (inputs.qdisc === undefined) return { qdisc: undefined, failures: [] };
  const first = qdiscFailures(inputs.qdisc, "qdisc", inputs, p, target);
  const fallback = inputs.qdiscFallback;
  if (first.length === 0 || fallback === undefined) return { qdisc: inputs.qdisc, failures: first };
  const why = first.map((f) => f.reason).join("; ");
  if (fallback === "none") {
    const n = inputs.interfaces.length;
    const left =
      n === 0
        ? ""
        : `, and ${inputs.interfaces.join(", ")} ${n === 1 ? "keeps its" : "keep their"} root qdisc`;
    return {
      qdisc: undefined,
      failures: [],
      note: `qdisc: ${why}. qdiscFallback is "none": no qdisc is set (${inputs.algorithm} runs alone${left})`,
    };
  }
  return {
    qdisc: fallback,
    failures: qdiscFailures(fallback, "qdiscFallback", inputs, p, target),
    note: `qdisc: ${why}. ${fallback} (qdiscFallback) is set instead`,
  };
}

/** The inputs as this host applies them: with `qdisc`, the one {@link chooseQdisc} chose. */
function asApplied(inputs: CongestionControlInputs, qdisc: string | undefined) {
  if (qdisc === inputs.qdisc) return inputs;
  const { qdisc: _declared, ...rest } = inputs;
  return qdisc === undefined ? rest : { ...rest, qdisc };
}

/** Read-only checks of the inputs against what the host offers (used at preview and create). */
function hostFailures(inputs: CongestionControlInputs, p: CongestionProbe, target: string) {
  const failures: Failure[] = [];
  const cc = ccOffer(p);
  const settable = settableAlgorithms(p, cc);
  const alg = inputs.algorithm;
  const hasModprobe = p.tools.includes("modprobe");
  const ccmod = cc.modules[alg];
  if (!settable.includes(alg)) {
    if (!p.allowedWritable && cc.names.includes(alg)) {
      failures.push({
        property: "algorithm",
        reason:
          `${alg} is in the kernel, but ${target} is a network namespace (a container), which may only set ` +
          `the algorithms in net.ipv4.tcp_allowed_congestion_control, decided by the machine: ${settable.join(" ")}`,
      });
    } else if (cc.complete || !hasModprobe) {
      failures.push({
        property: "algorithm",
        reason: `${alg} is not available on ${target}; available: ${settable.join(" ")}`,
      });
    }
  } else if (ccmod && !isLoaded(p, ccmod) && !hasModprobe) {
    failures.push({
      property: "algorithm",
      reason: `${alg} comes as the module ${ccmod}, which is not loaded, and ${target} has no modprobe (install kmod)`,
    });
  }
  const chosen = chooseQdisc(inputs, p, target);
  failures.push(...chosen.failures);
  if (chosen.qdisc !== undefined && inputs.interfaces.length > 0 && !p.tools.includes("tc")) {
    failures.push({
      property: "interfaces",
      reason: `tc is not installed on ${target} (install iproute2)`,
    });
  }
  inputs.interfaces.forEach((i, n) => {
    if (p.interfaces[i] === null) {
      failures.push({ property: `interfaces[${n}]`, reason: `no interface ${i} on ${target}` });
    }
  });
  return failures;
}

/** A root qdisc as the originals keep it (and the journal, as JSON). */
export function saveQdisc(q: TcQdisc): SavedQdisc {
  return {
    kind: q.kind,
    handle: q.handle,
    params: qdiscParameters(q).params,
    kernelDefault: isKernelDefault(q),
  };
}

/** Shell that puts `saved` back as the root qdisc of `dev`. */
function restoreCommand(dev: string, saved: SavedQdisc): string {
  if (saved.kernelDefault) return renderCommand(renderTcQdiscDelete(dev));
  return (
    `${renderCommand(renderTcQdiscReplace(dev, saved.kind, saved.params, saved.handle))} || exit 1\n` +
    rootKindCheck(dev, saved.kind)
  );
}

function replaceStep(dev: string, kind: string, live: TcQdisc): protocol.Step {
  return {
    property: "interfaces",
    action: `tc qdisc replace dev ${dev} root ${kind}`,
    run: `${renderCommand(renderTcQdiscReplace(dev, kind))} || exit 1\n${rootKindCheck(dev, kind)}`,
    undo: restoreCommand(dev, saveQdisc(live)),
  };
}

export function linkUnitOf(resourceName: string, dev: string, kind: string): LinkUnit {
  return {
    name: unitName("qdisc", `${resourceName}-${dev}`),
    description: `nettune CongestionControl ${resourceName}: root qdisc ${kind} on ${dev}`,
    interface: dev,
    commands: [renderTcQdiscReplace(dev, kind)],
  };
}

function moduleStep(property: string, mod: string): protocol.Step {
  return {
    property,
    action: `modprobe ${mod}`,
    run: renderCommand(["modprobe", mod]),
    undo: renderCommand(["modprobe", "-r", mod]),
  };
}

/** A root qdisc: live, as recorded before nettune replaced it, or only the kind nettune set. */
type Root = Pick<SavedQdisc, "kind"> & Partial<Pick<SavedQdisc, "handle" | "kernelDefault">>;

/**
 * Whether the live root qdisc is `want`: the same kind where only a kind is known; the kernel's
 * default of that kind for a recorded default; the same kind under the same handle otherwise.
 */
function isRoot(live: Root, want: Root): boolean {
  if (live.kind !== want.kind) return false;
  if (want.handle === undefined) return true;
  return want.kernelDefault ? live.kernelDefault === true : live.handle === want.handle;
}

interface Plan {
  steps: protocol.Step[];
  warnings: string[];
  state: Omit<
    CongestionControlOutputs,
    keyof CongestionControlInputs | "observedAlgorithm" | "warnings"
  >;
}

/**
 * The steps from what is live (`p`) to what is declared (`news`), given what this resource did
 * before (`olds`). `news` undefined means delete: put everything back.
 */
function plan(
  p: CongestionProbe,
  olds: CongestionControlOutputs | undefined,
  news: CongestionControlInputs | undefined,
  target: string,
): Plan {
  const steps: protocol.Step[] = [];
  const warnings: string[] = [];
  const cc = ccOffer(p);
  const qo = qdiscOffer(p);

  // Modules first: the algorithm (and qdisc) must exist before anything names them.
  const modules: string[] = [];
  if (news) {
    const m = cc.modules[news.algorithm];
    if (m) modules.push(m);
    const q = news.qdisc !== undefined ? qo.modules[news.qdisc] : undefined;
    if (q) modules.push(q);
    for (const mod of modules) {
      if (!isLoaded(p, mod))
        steps.push(moduleStep(mod.startsWith("tcp_") ? "algorithm" : "qdisc", mod));
    }
  }

  // The algorithm.
  const originalAlgorithm = olds?.originals.algorithm ?? p.current;
  if (news) {
    if (p.current !== news.algorithm) {
      steps.push(protocol.sysctlWriteStep("algorithm", CC_KEY, news.algorithm, p.current));
    }
  } else if (olds) {
    const r = restoreOrWarn({
      what: CC_KEY,
      live: p.current,
      applied: olds.applied.algorithm,
      original: olds.originals.algorithm,
      where: target,
    });
    if (r.action === "restore")
      steps.push(protocol.sysctlWriteStep("algorithm", CC_KEY, r.to, p.current));
    else if (r.action === "warn") warnings.push(r.message);
  }

  // The default qdisc: before the interfaces, since deleting a root qdisc brings back the default.
  const liveDefault = p.defaultQdisc;
  const wantDefault = liveDefault !== undefined ? news?.qdisc : undefined;
  let originalDefaultQdisc: string | null = null;
  if (wantDefault !== undefined && liveDefault !== undefined) {
    originalDefaultQdisc = olds?.originals.defaultQdisc ?? liveDefault;
    if (liveDefault !== wantDefault) {
      steps.push(protocol.sysctlWriteStep("qdisc", DEFAULT_QDISC_KEY, wantDefault, liveDefault));
    }
  } else if (olds?.originals.defaultQdisc != null && liveDefault !== undefined) {
    const r = restoreOrWarn({
      what: DEFAULT_QDISC_KEY,
      live: liveDefault,
      applied: olds.applied.defaultQdisc ?? "",
      original: olds.originals.defaultQdisc,
      where: target,
    });
    if (r.action === "restore")
      steps.push(protocol.sysctlWriteStep("qdisc", DEFAULT_QDISC_KEY, r.to, liveDefault));
    else if (r.action === "warn") warnings.push(r.message);
  }
  const wanted = news?.qdisc !== undefined ? news.interfaces : [];
  if (news?.qdisc !== undefined && liveDefault === undefined && wanted.length > 0) {
    warnings.push(
      `${DEFAULT_QDISC_KEY} does not exist on ${target} (it is kernel-wide and absent inside a network ` +
        `namespace): only the root qdisc of ${wanted.join(", ")} is set to ${news.qdisc}`,
    );
  }

  // The interfaces' root qdiscs.
  const originalQdiscs: Record<string, SavedQdisc> = {};
  const rootQdiscs: Record<string, string> = {};
  for (const dev of wanted) {
    const qs = p.interfaces[dev];
    const live = qs ? rootQdisc(qs, dev) : undefined;
    if (!qs || !live) throw new Error(`interfaces: no interface ${dev} on ${target}`);
    const kind = news!.qdisc!;
    const known = olds?.originals.qdiscs[dev];
    originalQdiscs[dev] = known ?? saveQdisc(live);
    rootQdiscs[dev] = kind;
    if (!known) {
      const children = childQdiscs(qs, dev).length;
      if (live.kind === "mq" && kind !== "mq") {
        warnings.push(
          `${dev} on ${target} has ${children} transmit queues under mq: a single ${kind} root serialises ` +
            `them; leaving ${dev} out of interfaces lets ${DEFAULT_QDISC_KEY} give each queue its own qdisc`,
        );
      } else if (!isKernelDefault(live) && (children > 0 || !qdiscParameters(live).complete)) {
        warnings.push(
          `${dev} on ${target}: its root qdisc ${live.kind} ${live.handle} has settings, classes or ` +
            `child qdiscs that destroy cannot fully put back (it restores ${live.kind} ${live.handle} ` +
            `with the settings tc reports)`,
        );
      }
    }
    if (live.kind !== kind) steps.push(replaceStep(dev, kind, live));
  }
  const previouslySet = olds?.applied.qdisc ? olds.interfaces : [];
  for (const dev of previouslySet.filter((d) => !wanted.includes(d))) {
    const qs = p.interfaces[dev];
    const orig = olds?.originals.qdiscs[dev];
    const applied = olds?.applied.qdisc ?? "";
    if (!qs) {
      warnings.push(`${dev} is gone from ${target}; its root qdisc cannot be restored`);
      continue;
    }
    const live = rootQdisc(qs, dev);
    if (!orig || !live) continue;
    const r = restoreOrWarn<Root>({
      what: `root qdisc of ${dev}`,
      live: { kind: live.kind, handle: live.handle, kernelDefault: isKernelDefault(live) },
      applied: { kind: applied },
      original: orig,
      where: target,
      same: isRoot,
      show: (q) => q.kind,
    });
    if (r.action === "restore") {
      steps.push({
        property: "interfaces",
        action: `restore the root qdisc ${orig.kind} of ${dev}`,
        run: restoreCommand(dev, orig),
        undo: `${renderCommand(renderTcQdiscReplace(dev, applied))}`,
      });
    } else if (r.action === "warn") warnings.push(r.message);
  }

  // Persistence.
  const persist = news?.persist === true;
  const name = (news ?? olds)!.resourceName;
  const owner = safeName(name);
  let sysctlFile: string | null = null;
  if (persist && news) {
    sysctlFile = sysctlFileOf(name);
    const values: Record<string, string> = { [CC_KEY]: news.algorithm };
    if (wantDefault !== undefined) values[DEFAULT_QDISC_KEY] = wantDefault;
    steps.push(protocol.fileWriteStep("persist", sysctlFile, renderSysctlConf(owner, values)));
  }
  // A file of the old state under another name (persist off, a renamed resource) goes.
  if (olds?.filePath && olds.filePath !== sysctlFile) {
    steps.push(protocol.fileRemoveStep("persist", olds.filePath));
  }
  let modulesFile: string | null = null;
  if (persist && modules.length > 0) {
    modulesFile = modulesFileOf(name);
    steps.push(
      protocol.fileWriteStep("persist", modulesFile, renderModulesLoadConf(owner, modules)),
    );
  }
  if (olds?.modulesFilePath && olds.modulesFilePath !== modulesFile) {
    steps.push(protocol.fileRemoveStep("persist", olds.modulesFilePath));
  }
  const oldUnit = (unit: string): LinkUnit | undefined => {
    const dev = olds?.interfaces.find((d) => unitName("qdisc", `${name}-${d}`) === unit);
    return dev && olds?.applied.qdisc ? linkUnitOf(name, dev, olds.applied.qdisc) : undefined;
  };
  const oldUnits = (olds?.unitPaths ?? []).map(unitNameOfPath);
  const units = persist && news?.qdisc ? wanted.map((d) => linkUnitOf(name, d, news.qdisc!)) : [];
  for (const u of units) {
    const before = oldUnit(u.name);
    if (before && oldUnits.includes(u.name) && renderLinkUnit(before) === renderLinkUnit(u)) {
      continue;
    }
    steps.push({
      property: "persist",
      action: `install the systemd unit ${u.name}`,
      // -e: a unit file that cannot be written fails the step, not only a failing systemctl.
      run: `set -e\n${renderUnitInstall(u)}`,
      undo:
        before && oldUnits.includes(u.name) ? renderUnitInstall(before) : renderUnitRemove(u.name),
    });
  }
  for (const old of oldUnits) {
    if (units.some((u) => u.name === old)) continue;
    const before = oldUnit(old);
    steps.push({
      property: "persist",
      action: `remove the systemd unit ${old}`,
      run: `set -e\n${renderUnitRemove(old)}`,
      undo: before ? renderUnitInstall(before) : undefined,
    });
  }

  return {
    steps,
    warnings,
    state: {
      originals: {
        algorithm: originalAlgorithm,
        defaultQdisc: originalDefaultQdisc,
        qdiscs: originalQdiscs,
      },
      applied: {
        algorithm: news?.algorithm ?? originalAlgorithm,
        defaultQdisc: wantDefault ?? null,
        qdisc: wanted.length > 0 ? news!.qdisc! : null,
      },
      rootQdiscs,
      modules,
      filePath: sysctlFile,
      modulesFilePath: modulesFile,
      unitPaths: units.map((u) => unitPathOf(u.name)),
    },
  };
}

/** Turns the kernel's terse answer into what it means for these two keys. */
function explain(step: protocol.Step, status: number, reason: string, p: CongestionProbe): string {
  const key = [CC_KEY, DEFAULT_QDISC_KEY].find((k) => step.action.startsWith(`${k} = `));
  if (!key) return reason;
  if (status === protocol.SYSCTL_STEP.readBack)
    return `the kernel reports ${reason} after the write`;
  if (key === CC_KEY) {
    if (/Operation not permitted/.test(reason)) {
      return `${reason} (a network namespace may only set the algorithms in net.ipv4.tcp_allowed_congestion_control: ${p.allowed})`;
    }
    if (/No such file or directory/.test(reason)) {
      return `${reason} (the kernel has no such algorithm; available: ${p.available})`;
    }
  }
  if (key === DEFAULT_QDISC_KEY && /No such file or directory/.test(reason)) {
    return `${reason} (the kernel has no such qdisc)`;
  }
  return reason;
}

/**
 * Runs the steps all-or-nothing, then (if asked) opens a connection and reads its algorithm.
 * With `journal`, a create's: written with its values before the first step, or read where it
 * is there already (what it held is returned).
 */
async function run(
  t: Transport,
  steps: protocol.Step[],
  p: CongestionProbe,
  observe: boolean,
  journal?: { path: string; values: Record<string, string> },
): Promise<{ observed: string | null; journal: Readonly<Record<string, string>> }> {
  if (steps.length === 0 && !observe && !journal) return { observed: null, journal: {} };
  const script = protocol.renderSteps(steps, {
    after: observe ? renderObserveConnection() : undefined,
    ...(journal ? { journal: journal.path, journalValues: journal.values } : {}),
  });
  const res = await t.exec({ script }, { allowFailure: true });
  const out = protocol.parseSteps(res.stdout, res.exitCode);
  if (!out.ok) {
    const step = out.kind === "failed" ? steps[out.index] : undefined;
    const what = step ? `${step.property}: ${step.action}` : "apply";
    const why =
      step && out.kind === "failed" ? explain(step, out.status, out.reason, p) : out.reason;
    throw new Error(
      `${what} failed on ${t.target}: ${why}; nothing was changed: every step already applied was undone`,
    );
  }
  return {
    observed: observe ? (parseObservedAlgorithm(out.after) ?? null) : null,
    journal: out.journal,
  };
}

/** Warnings that need the host: what a new connection really got, fq where bbr runs without it. */
function hostWarnings(
  inputs: CongestionControlInputs,
  p: CongestionProbe,
  observed: string | null,
  target: string,
): string[] {
  const w: string[] = [];
  if (inputs.algorithm === "bbr" && inputs.qdisc !== "fq" && qdiscOffer(p).names.includes("fq")) {
    w.push(
      `${target} offers the fq qdisc: qdisc "fq" is the recommended pairing for bbr (bbr paces its ` +
        `packets itself since Linux 4.13, so it works with any qdisc; fq paces them at lower CPU cost)`,
    );
  }
  if (observed === null) {
    w.push(
      `could not open a TCP connection on ${target} to see which algorithm it gets (it needs bash, ss and a listening TCP port)`,
    );
  } else if (observed !== inputs.algorithm) {
    w.push(
      `a new TCP connection on ${target} got ${observed}, not ${inputs.algorithm}: a route with congctl, ` +
        `a BPF program or the application itself chooses another algorithm for it`,
    );
  }
  return w;
}

const sameSet = (a: readonly string[], b: readonly string[]) =>
  stableJson([...a].sort()) === stableJson([...b].sort());

/** The interfaces whose root qdisc the state says this resource set. */
const heldInterfaces = (olds: CongestionControlOutputs) =>
  olds.applied.qdisc ? olds.interfaces : [];

export const congestionControlSpec: Spec<CongestionControlInputs, CongestionControlOutputs, Facts> =
  {
    kind: "CongestionControl",
    schema: congestionControlSchema,
    replaceOn: ["connection"],
    // The files and units named after it follow in place (see plan).
    shows: (field) => field !== "resourceName",
    // The interfaces are a set: another order is the same declaration.
    normalize: (olds, news) =>
      sameSet(olds.interfaces, news.interfaces) ? { ...news, interfaces: olds.interfaces } : news,
    outputs: [
      "originals",
      "applied",
      "rootQdiscs",
      "modules",
      "filePath",
      "modulesFilePath",
      "unitPaths",
      "observedAlgorithm",
    ],
    id: (inputs) => `congestion/${inputs.resourceName}`,

    async probe(t, inputs, why) {
      // An update also reads the interfaces it may give back; refresh and delete only those.
      const own = why.op === "read" || why.op === "delete" ? [] : inputs.interfaces;
      const held = "olds" in why ? heldInterfaces(why.olds) : [];
      const interfaces = [...new Set([...own, ...held])];
      // Refresh also reports what a new connection gets, in the same round trip.
      const observe = why.op === "read";
      const probe = renderCongestionProbe(interfaces);
      const res = await t.exec({
        script: observe ? `${probe}\n${renderObserveConnection()}` : probe,
      });
      const p = parseCongestionProbe(res.stdout, interfaces);
      return {
        facts: observe
          ? { probe: p, observed: parseObservedAlgorithm(res.stdout) ?? null }
          : { probe: p },
      };
    },

    check: (inputs, facts, target) => hostFailures(inputs, facts.probe, target),
    notes: (inputs, facts, target) => {
      const { note } = chooseQdisc(inputs, facts.probe, target);
      return note ? [note] : [];
    },

    // Nothing to do but write its own files and units: every step left is persistence.
    asDeclared(inputs, facts) {
      const chosen = chooseQdisc(inputs, facts.probe, "");
      const { steps } = plan(facts.probe, undefined, asApplied(inputs, chosen.qdisc), "");
      return steps.every((s) => s.property === "persist");
    },

    async apply(ctx, facts, olds, news) {
      const t = ctx.transport;
      const p = facts.probe;
      const chosen = chooseQdisc(news, p, t.target);
      if (chosen.note) ctx.warn(chosen.note);
      const { steps, warnings, state } = plan(p, olds, asApplied(news, chosen.qdisc), t.target);
      // A create keeps a journal of what it found, so a lost answer loses no original.
      const journal = olds
        ? undefined
        : { path: journalPathOf(news.resourceName), values: journalValues(state.originals) };
      const out = await run(t, steps, p, true, journal);
      const originals = journal ? withJournal(state.originals, out.journal) : state.originals;
      warnings.push(...hostWarnings(news, p, out.observed, t.target));
      for (const w of warnings) ctx.warn(w);
      return { ...state, originals, observedAlgorithm: out.observed, warnings: [] };
    },

    async release(ctx, facts, olds) {
      const t = ctx.transport;
      if (!facts) return;
      const { steps, warnings } = plan(facts.probe, olds, undefined, t.target);
      for (const w of warnings) ctx.warn(w);
      // Last: the journal goes once every original is back.
      steps.push({
        property: "journal",
        action: "remove the journal of originals",
        run: protocol.renderJournalRemove(journalPathOf(olds.resourceName)),
      });
      await run(t, steps, facts.probe, false);
    },

    live(olds, facts) {
      if (!facts) return {};
      const p = facts.probe;
      const rootQdiscs: Record<string, string> = {};
      let qdisc = olds.qdisc;
      if (olds.applied.defaultQdisc && p.defaultQdisc !== undefined) {
        if (p.defaultQdisc !== olds.applied.defaultQdisc) qdisc = p.defaultQdisc;
      }
      for (const dev of heldInterfaces(olds)) {
        const qs = p.interfaces[dev];
        const live = qs ? rootQdisc(qs, dev) : undefined;
        if (!live) continue;
        rootQdiscs[dev] = live.kind;
        // A root qdisc changed behind nettune's back shows as drift of qdisc.
        if (qdisc === olds.qdisc && live.kind !== olds.applied.qdisc) qdisc = live.kind;
      }
      // Refresh also brings the outputs that follow the host up to date.
      const out: Partial<CongestionControlOutputs> = {
        algorithm: p.current,
        rootQdiscs,
        observedAlgorithm: facts.observed ?? null,
      };
      if (qdisc !== undefined) out.qdisc = qdisc;
      return out;
    },
  };

export const congestionControlHandler = handlerOf(congestionControlSpec);
