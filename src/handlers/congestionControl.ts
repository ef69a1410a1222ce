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
  fileRemoveStep,
  fileWriteStep,
  parseCongestionProbe,
  parseObservedAlgorithm,
  parseSteps,
  renderCongestionProbe,
  renderModulesLoadConf,
  renderObserveConnection,
  renderSteps,
  rootKindCheck,
  sysctlWriteStep,
  type CongestionProbe,
  type Step,
} from "../host/congestion";
import { SYSCTL_D, renderSysctlConf } from "../host/sysctl";
import {
  renderLinkUnit,
  renderUnitInstall,
  renderUnitRemove,
  unitName,
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
import {
  diffResult,
  sameHost,
  stableJson,
  type DiffResult,
  type Failure,
  type ResourceHandler,
  failuresError,
} from "../engine/lifecycle";

export const MODULES_LOAD_D = "/etc/modules-load.d";

export interface CongestionControlOutputs extends CongestionControlInputs {
  /** net.ipv4.tcp_congestion_control before nettune first set it. */
  originalAlgorithm: string;
  /** What nettune set. */
  appliedAlgorithm: string;
  /** net.core.default_qdisc before nettune first set it; null when nettune does not set it. */
  originalDefaultQdisc: string | null;
  /** The default qdisc nettune set, or null. */
  appliedDefaultQdisc: string | null;
  /** Each listed interface's root qdisc before nettune replaced it. */
  originalQdiscs: Record<string, SavedQdisc>;
  /** The root qdisc nettune gave the listed interfaces, or null. */
  appliedQdisc: string | null;
  /** The live root qdisc kind of each listed interface. */
  rootQdiscs: Record<string, string>;
  /** Kernel modules loaded for the algorithm or qdisc (listed in the modules-load.d file). */
  modules: string[];
  /** The sysctl.d file this resource owns, or null without persist. */
  sysctlFile: string | null;
  /** The modules-load.d file this resource owns, or null. */
  modulesFile: string | null;
  /** The systemd units that set the interfaces' root qdisc at boot. */
  units: string[];
  /** The algorithm a TCP connection opened on the host after applying got, or null if unseen. */
  observedAlgorithm: string | null;
  /** Messages from the last operation the user should read. */
  warnings: string[];
}

const safeName = (name: string) => name.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 100);
export const sysctlFileOf = (resourceName: string) =>
  `${SYSCTL_D}/90-nettune-congestion-${safeName(resourceName)}.conf`;
export const modulesFileOf = (resourceName: string) =>
  `${MODULES_LOAD_D}/nettune-${safeName(resourceName)}.conf`;

async function probe(t: Transport, interfaces: readonly string[]): Promise<CongestionProbe> {
  const res = await t.exec({ script: renderCongestionProbe(interfaces) });
  return parseCongestionProbe(res.stdout, interfaces);
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
  if (inputs.qdisc !== undefined) {
    const q = qdiscOffer(p);
    const fit = q.names.filter((n) => !unfitRootQdisc(n));
    const qmod = q.modules[inputs.qdisc];
    if (q.complete && !q.names.includes(inputs.qdisc)) {
      failures.push({
        property: "qdisc",
        reason: `${inputs.qdisc} is not available on ${target}; available: ${fit.join(" ")}`,
      });
    } else if (qmod && !isLoaded(p, qmod) && !hasModprobe) {
      failures.push({
        property: "qdisc",
        reason: `${inputs.qdisc} comes as the module ${qmod}, which is not loaded, and ${target} has no modprobe (install kmod)`,
      });
    }
    if (p.defaultQdisc === undefined && inputs.interfaces.length === 0) {
      failures.push({
        property: "qdisc",
        reason:
          `${DEFAULT_QDISC_KEY} does not exist on ${target}: it is kernel-wide and absent inside a network ` +
          `namespace (a container); list the interfaces whose root qdisc to replace, or leave qdisc out`,
      });
    }
  }
  if (inputs.interfaces.length > 0 && !p.tools.includes("tc")) {
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

function save(q: TcQdisc): SavedQdisc {
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

function replaceStep(dev: string, kind: string, live: TcQdisc): Step {
  return {
    property: "interfaces",
    action: `tc qdisc replace dev ${dev} root ${kind}`,
    run: `${renderCommand(renderTcQdiscReplace(dev, kind))} || exit 1\n${rootKindCheck(dev, kind)}`,
    undo: restoreCommand(dev, save(live)),
  };
}

function linkUnitOf(resourceName: string, dev: string, kind: string): LinkUnit {
  return {
    name: unitName("qdisc", `${resourceName}-${dev}`),
    description: `nettune CongestionControl ${resourceName}: root qdisc ${kind} on ${dev}`,
    interface: dev,
    commands: [renderTcQdiscReplace(dev, kind)],
  };
}

function moduleStep(property: string, mod: string): Step {
  return {
    property,
    action: `modprobe ${mod}`,
    run: renderCommand(["modprobe", mod]),
    undo: renderCommand(["modprobe", "-r", mod]),
  };
}

interface Plan {
  steps: Step[];
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
  const steps: Step[] = [];
  const warnings: string[] = [];
  const cc = ccOffer(p);
  const qo = qdiscOffer(p);
  const changedOutside = (what: string, live: string, applied: string) =>
    `${what}: left at ${live} on ${target}: it was changed outside nettune after it was set to ${applied}`;

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
  const originalAlgorithm = olds?.originalAlgorithm ?? p.current;
  if (news) {
    if (p.current !== news.algorithm) {
      steps.push(sysctlWriteStep("algorithm", CC_KEY, news.algorithm, p.current));
    }
  } else if (olds) {
    if (p.current === olds.appliedAlgorithm) {
      if (p.current !== olds.originalAlgorithm) {
        steps.push(sysctlWriteStep("algorithm", CC_KEY, olds.originalAlgorithm, p.current));
      }
    } else if (p.current !== olds.originalAlgorithm) {
      warnings.push(changedOutside(CC_KEY, p.current, olds.appliedAlgorithm));
    }
  }

  // The default qdisc: before the interfaces, since deleting a root qdisc brings back the default.
  const liveDefault = p.defaultQdisc;
  const wantDefault = liveDefault !== undefined ? news?.qdisc : undefined;
  let originalDefaultQdisc: string | null = null;
  if (wantDefault !== undefined && liveDefault !== undefined) {
    originalDefaultQdisc = olds?.originalDefaultQdisc ?? liveDefault;
    if (liveDefault !== wantDefault) {
      steps.push(sysctlWriteStep("qdisc", DEFAULT_QDISC_KEY, wantDefault, liveDefault));
    }
  } else if (olds?.originalDefaultQdisc != null && liveDefault !== undefined) {
    const applied = olds.appliedDefaultQdisc ?? "";
    if (liveDefault === applied) {
      if (liveDefault !== olds.originalDefaultQdisc) {
        steps.push(
          sysctlWriteStep("qdisc", DEFAULT_QDISC_KEY, olds.originalDefaultQdisc, liveDefault),
        );
      }
    } else if (liveDefault !== olds.originalDefaultQdisc) {
      warnings.push(changedOutside(DEFAULT_QDISC_KEY, liveDefault, applied));
    }
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
    const known = olds?.originalQdiscs[dev];
    originalQdiscs[dev] = known ?? save(live);
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
  const previouslySet = olds?.appliedQdisc ? olds.interfaces : [];
  for (const dev of previouslySet.filter((d) => !wanted.includes(d))) {
    const qs = p.interfaces[dev];
    const orig = olds?.originalQdiscs[dev];
    const applied = olds?.appliedQdisc ?? "";
    if (!qs) {
      warnings.push(`${dev} is gone from ${target}; its root qdisc cannot be restored`);
      continue;
    }
    const live = rootQdisc(qs, dev);
    if (!orig || !live) continue;
    if (live.kind === applied) {
      const alreadyBack = orig.kernelDefault
        ? isKernelDefault(live) && live.kind === orig.kind
        : live.handle === orig.handle && live.kind === orig.kind;
      if (!alreadyBack) {
        steps.push({
          property: "interfaces",
          action: `restore the root qdisc ${orig.kind} of ${dev}`,
          run: restoreCommand(dev, orig),
          undo: `${renderCommand(renderTcQdiscReplace(dev, applied))}`,
        });
      }
    } else if (live.kind !== orig.kind) {
      warnings.push(changedOutside(`root qdisc of ${dev}`, live.kind, applied));
    }
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
    steps.push(fileWriteStep("persist", sysctlFile, renderSysctlConf(owner, values)));
  } else if (olds?.sysctlFile) {
    steps.push(fileRemoveStep("persist", olds.sysctlFile));
  }
  let modulesFile: string | null = null;
  if (persist && modules.length > 0) {
    modulesFile = modulesFileOf(name);
    steps.push(fileWriteStep("persist", modulesFile, renderModulesLoadConf(owner, modules)));
  } else if (olds?.modulesFile) {
    steps.push(fileRemoveStep("persist", olds.modulesFile));
  }
  const oldUnit = (unit: string): LinkUnit | undefined => {
    const dev = olds?.interfaces.find((d) => unitName("qdisc", `${name}-${d}`) === unit);
    return dev && olds?.appliedQdisc ? linkUnitOf(name, dev, olds.appliedQdisc) : undefined;
  };
  const units = persist && news?.qdisc ? wanted.map((d) => linkUnitOf(name, d, news.qdisc!)) : [];
  for (const u of units) {
    const before = oldUnit(u.name);
    if (before && olds?.units.includes(u.name) && renderLinkUnit(before) === renderLinkUnit(u)) {
      continue;
    }
    steps.push({
      property: "persist",
      action: `install the systemd unit ${u.name}`,
      // -e: a unit file that cannot be written fails the step, not only a failing systemctl.
      run: `set -e\n${renderUnitInstall(u)}`,
      undo:
        before && olds?.units.includes(u.name)
          ? renderUnitInstall(before)
          : renderUnitRemove(u.name),
    });
  }
  for (const old of olds?.units ?? []) {
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
      originalAlgorithm,
      appliedAlgorithm: news?.algorithm ?? originalAlgorithm,
      originalDefaultQdisc,
      appliedDefaultQdisc: wantDefault ?? null,
      originalQdiscs,
      appliedQdisc: wanted.length > 0 ? news!.qdisc! : null,
      rootQdiscs,
      modules,
      sysctlFile,
      modulesFile,
      units: units.map((u) => u.name),
    },
  };
}

/** Turns the kernel's terse errno into what it means for these two keys. */
function explain(step: Step, reason: string, p: CongestionProbe): string {
  if (step.action.startsWith(CC_KEY)) {
    if (/Operation not permitted/.test(reason)) {
      return `${reason} (a network namespace may only set the algorithms in net.ipv4.tcp_allowed_congestion_control: ${p.allowed})`;
    }
    if (/No such file or directory/.test(reason)) {
      return `${reason} (the kernel has no such algorithm; available: ${p.available})`;
    }
  }
  if (step.action.startsWith(DEFAULT_QDISC_KEY) && /No such file or directory/.test(reason)) {
    return `${reason} (the kernel has no such qdisc)`;
  }
  return reason;
}

/** Runs the steps all-or-nothing, then (if asked) opens a connection and reads its algorithm. */
async function run(
  t: Transport,
  steps: Step[],
  p: CongestionProbe,
  observe: boolean,
): Promise<string | null> {
  if (steps.length === 0 && !observe) return null;
  const script = renderSteps(steps, observe ? renderObserveConnection() : undefined);
  const res = await t.exec({ script }, { allowFailure: true });
  const out = parseSteps(res.stdout, res.exitCode);
  if (!out.ok) {
    const step = steps[out.index];
    const what = step ? `${step.property}: ${step.action}` : "apply";
    throw new Error(
      `${what} failed on ${t.target}: ${step ? explain(step, out.reason, p) : out.reason}; ` +
        `nothing was changed: every step already applied was undone`,
    );
  }
  return observe ? (parseObservedAlgorithm(out.after) ?? null) : null;
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
    w.push(`${target} offers the fq qdisc: qdisc "fq" is the recommended pairing for bbr`);
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

function withoutOutputs(props: CongestionControlOutputs): CongestionControlInputs {
  const {
    originalAlgorithm: _a,
    appliedAlgorithm: _b,
    originalDefaultQdisc: _c,
    appliedDefaultQdisc: _d,
    originalQdiscs: _e,
    appliedQdisc: _f,
    rootQdiscs: _g,
    modules: _h,
    sysctlFile: _i,
    modulesFile: _j,
    units: _k,
    observedAlgorithm: _l,
    warnings: _m,
    ...inputs
  } = props;
  return inputs;
}

const sameSet = (a: readonly string[], b: readonly string[]) =>
  stableJson([...a].sort()) === stableJson([...b].sort());

export const congestionControlHandler: ResourceHandler<
  CongestionControlInputs,
  CongestionControlOutputs
> = {
  kind: "CongestionControl",
  schema: congestionControlSchema,
  replaceOn: ["connection"],

  async hostCheck(inputs, ctx) {
    const p = await probe(ctx.transport, inputs.interfaces);
    return hostFailures(inputs, p, ctx.transport.target);
  },

  diff(_id, olds, news): DiffResult {
    const replaces: string[] = [];
    if (!sameHost(olds.connection, news.connection)) replaces.push("connection");
    const detailedDiff: NonNullable<DiffResult["detailedDiff"]> = {};
    if (olds.algorithm !== news.algorithm)
      detailedDiff.algorithm = { kind: "update", inputDiff: true };
    if (olds.qdisc !== news.qdisc) {
      detailedDiff.qdisc = {
        kind: olds.qdisc === undefined ? "add" : news.qdisc === undefined ? "delete" : "update",
        inputDiff: true,
      };
    }
    if (!sameSet(olds.interfaces, news.interfaces))
      detailedDiff.interfaces = { kind: "update", inputDiff: true };
    if (olds.persist !== news.persist) detailedDiff.persist = { kind: "update", inputDiff: true };
    return diffResult(detailedDiff, replaces, olds, news);
  },

  async create(inputs, ctx) {
    const t = ctx.transport;
    const p = await probe(t, inputs.interfaces);
    const failures = hostFailures(inputs, p, t.target);
    if (failures.length > 0) throw failuresError(failures);
    const { steps, warnings, state } = plan(p, undefined, inputs, t.target);
    const observed = await run(t, steps, p, true);
    warnings.push(...hostWarnings(inputs, p, observed, t.target));
    for (const w of warnings) ctx.warn(w);
    const c = inputs.connection;
    return {
      id: `${c.user}@${c.host}:${c.port}/congestion/${inputs.resourceName}`,
      outs: { ...inputs, ...state, observedAlgorithm: observed, warnings },
    };
  },

  async read(_id, olds, ctx) {
    const t = ctx.transport;
    const interfaces = olds.appliedQdisc ? olds.interfaces : [];
    const res = await t.exec({
      script: `${renderCongestionProbe(interfaces)}\n${renderObserveConnection()}`,
    });
    const p = parseCongestionProbe(res.stdout, interfaces);
    const observed = parseObservedAlgorithm(res.stdout) ?? null;
    const rootQdiscs: Record<string, string> = {};
    let qdisc = olds.qdisc;
    if (olds.appliedDefaultQdisc && p.defaultQdisc !== undefined) {
      if (p.defaultQdisc !== olds.appliedDefaultQdisc) qdisc = p.defaultQdisc;
    }
    for (const dev of interfaces) {
      const qs = p.interfaces[dev];
      const live = qs ? rootQdisc(qs, dev) : undefined;
      if (!live) continue;
      rootQdiscs[dev] = live.kind;
      // A root qdisc changed behind nettune's back shows as drift of qdisc.
      if (qdisc === olds.qdisc && live.kind !== olds.appliedQdisc) qdisc = live.kind;
    }
    const props: CongestionControlOutputs = {
      ...olds,
      algorithm: p.current,
      rootQdiscs,
      observedAlgorithm: observed,
      warnings: [],
    };
    if (qdisc !== undefined) props.qdisc = qdisc;
    return { props, inputs: withoutOutputs(props) };
  },

  async update(_id, olds, news, ctx) {
    const t = ctx.transport;
    const all = [...new Set([...news.interfaces, ...(olds.appliedQdisc ? olds.interfaces : [])])];
    const p = await probe(t, all);
    const failures = hostFailures(news, p, t.target);
    if (failures.length > 0) throw failuresError(failures);
    const { steps, warnings, state } = plan(p, olds, news, t.target);
    const observed = await run(t, steps, p, true);
    warnings.push(...hostWarnings(news, p, observed, t.target));
    for (const w of warnings) ctx.warn(w);
    return { ...news, ...state, observedAlgorithm: observed, warnings };
  },

  async delete(_id, olds, ctx) {
    const t = ctx.transport;
    const p = await probe(t, olds.appliedQdisc ? olds.interfaces : []);
    const { steps, warnings } = plan(p, olds, undefined, t.target);
    for (const w of warnings) ctx.warn(w);
    await run(t, steps, p, false);
  },
};
