/**
 * IrqAffinity's plan at boot: a POSIX shell script that places a NIC's queue IRQs on CPUs on the
 * instance itself, where cloud-init user data runs and there is no node, only `sh`, `awk`,
 * `grep`, `sed`, `cat` and `readlink`. It plans as `planPins` (src/specs/irqAffinity.ts) does
 * from what the probe reads (src/host/irqs.ts): the same sysfs files, /proc/interrupts, the same
 * queue names (src/host/interrupts.ts), the same order of CPUs. No I/O here.
 *
 * For `{ interface: "eth0", policy: "spread" }` on a 4-CPU VM with 2 NUMA nodes (CPUs 0-1 and
 * 2-3) and a virtio_net NIC with 4 queue pairs on node 1, the script prints, tab-separated:
 *
 *   virtio3-input.0   2
 *   virtio3-output.0  2
 *   virtio3-input.1   3
 *   virtio3-output.1  3
 *   virtio3-input.2   0
 *   …
 *
 * the table the pin script takes by IRQ name (`renderPinScript`, src/host/irqs.ts). What it
 * cannot plan (another driver, no queue IRQ, no CPU left, an offline CPU, a queue the map names
 * that the NIC lacks, an IRQ whose affinity the kernel manages) ends it with exit 3 and the
 * reason on stderr, as the same host fails IrqAffinity's preview.
 */
import type { IrqAffinityInputs } from "../schemas/irqAffinity";
import { interfaceSchema } from "../schemas/link";
import { cpuListProblem, normalizeCpuList } from "./cpus";
import { shellQuote } from "../transport/quote";

/**
 * ena's management IRQ (`ena-mgmnt@pci:<bdf>`) as src/host/interrupts.ts's rule for ena skips it,
 * in double quotes for the script, where `h` is a hex digit.
 */
const ENA_MGMT = '"^ena-mgmnt@pci:$h$h$h$h+:$h$h:$h$h[.][0-7]\\$"';

function cpuList(what: string, text: string): string {
  const problem = cpuListProblem(text);
  if (problem) throw new RangeError(`${what} ${problem}`);
  return normalizeCpuList(text);
}

// The planner, in awk; only the parts a policy needs are rendered. Lines in: `o ONLINE`,
// `u NUMA_NODE`, `n NODE CPUS`, `s CPU SIBLINGS`, `M` (the device has msi_irqs), `m IRQ` per
// MSI IRQ, `g IRQ` (managed), then /proc/interrupts. A row's first action that is a queue
// (prefix `a`, then `x`) or another IRQ of the driver (`k`) decides, as in queueIrqs. L reads a
// cpulist into A, F fails; Z writes a set as a cpulist; H is 1 for a core's first allowed
// thread. "spread" ranks a CPU -1 on the NIC's node, N on node N, N0 (past the last) on none.
const AWK = {
  L: 'function L(s,A,  n,i,r,j){n=split(s,P,",");for(i=1;i<=n;i++){if(split(P[i],r,"-")<2)r[2]=r[1];for(j=r[1]+0;j<=r[2];j++){A[j];if(j>X)X=j}}}\nfunction F(m){print "nettune: " f ": " m|"cat >&2";exit 3}',
  Z: 'function Z(A,  c,o,s){s=-1;for(c=0;c<=X+1;c++)if(c in A){if(s<0)s=c}else if(s>=0){o=o (o==""?"":",") s (c-1>s?"-" (c-1):"");s=-1}return o}',
  H: "function H(c,s){delete T;L(S[c],T);for(s in T)if(s+0<c&&(s in C))return 0;return 1}",
  read: '$1=="o"{L($2,O)}$1=="M"{M=1}$1=="m"{I[$2]}$1=="g"{G[$2]}',
  node: '$1=="u"&&$2~/^[0-9]+$/{U=$2}',
  spreadRead: '$1=="s"{S[$2]=$3}$1=="n"{delete T;L($3,T);for(c in T)D[c]=$2;if($2>=N0)N0=$2+1}',
  numaRead: '$1=="n"{N[$2]=$3}',
  queues:
    '$1~/^[0-9]+:$/&&!(M&&!(($1+0) in I)){for(j=2;j<=NF;j++){t=$j;sub(/,$/,"",t)\n' +
    'if(index(t,a)==1&&(w=substr(t,length(a)+1))~x){r=w~/^i/?1:w~/^o/?2:0;sub(/^[a-z]+[.]/,"",w);Q[++n]=w+0;R[n]=$1+0;A[n]=t;Y[n]=(w*3+r)*1e6+R[n];break}if(t~k)break}}',
  candidates:
    'L(e,E);for(c=0;c<=X;c++)if((c in O)&&!(c in E)){C[c];v++}if(!v)F("exclude leaves no online CPU")',
  sorted:
    'if(!n)F("no queue interrupts")\nfor(i=1;i<=n;i++){for(j=i;j>1&&Y[W[j-1]]>Y[i];j--)W[j]=W[j-1];W[j]=i}\nfor(i=1;i<=n;i++)if(!(Q[W[i]] in V))V[Q[W[i]]]=u++',
  spread:
    'N0+=0;for(t=1;t>=0;t--)for(r=-1;r<=N0;r++)for(c=0;c<=X;c++)if((c in C)&&((c in D)?(U!=""&&D[c]==U?-1:D[c]):N0)==r&&H(c)==t)B[o++]=c',
  numa: 'z=Z(C);if(U in N){L(N[U],T);for(c in T)if(c in C)J[c];z=Z(J);if(z=="")F("no CPU of NUMA node " U " left")}',
  cpus: "L(y,T)",
  map: 'v=split(y,P2," ");for(i=1;i<=v;i++){split(P2[i],kv,"=");B[kv[1]]=kv[2];L(kv[2],T);if(!(kv[1] in V))F("no queue " kv[1])}',
  offline: 'for(c in T)if(!(c in O))F("CPU " c " is offline")',
  out: (skip: string, cpus: string) =>
    `for(i=1;i<=n;i++){h=W[i];q=Q[h];${skip}if(R[h] in G)F("IRQ " R[h] " (" A[h] ") is managed by the kernel")\n` +
    `s=s A[h] "\\t" ${cpus} "\\n"}printf "%s",s}`,
};

/**
 * POSIX shell that prints the pin table `action<TAB>cpus` per queue IRQ of `ifname`, planned as
 * planPins would on this host, or fails (exit 3) with a reason on stderr.
 *
 * Only `virtio_net` and `ena` NICs: the interface itself, not a bond or VLAN above one. The
 * queue IRQs are those of `/sys/class/net/IF/device/msi_irqs` (for virtio_net, of the PCI device
 * above `virtioN`) named `virtioN-input.Q`/`virtioN-output.Q` (virtio_net) or `IF-Tx-Rx-Q` (ena)
 * in /proc/interrupts, in queue order, rx before tx. The policies are IrqAffinity's: `"spread"`
 * (one CPU per queue, the NIC's NUMA node first, a thread of every core before the siblings,
 * wrapping around), `"numa-local"` (the node's CPUs), `{ cpus }` and `{ map }`; `exclude` takes
 * CPUs out of the first two.
 *
 * @param opts.root a folder prefixed to every path the script reads (`/sys`, `/proc`), for
 *   tests on a copy of a host's files; "" (the default) reads the host's own.
 * @throws RangeError on an interface name the schema refuses, or a cpulist or map key that is
 *   not one.
 * @example
 * renderBootPlanner({ interface: "eth0", policy: { map: { 0: "2", 1: "3" } } });
 * // run on the host above:  virtio3-input.0 2, virtio3-output.0 2, virtio3-input.1 3, …
 */
export function renderBootPlanner(
  inputs: { interface: string; policy: IrqAffinityInputs["policy"]; exclude?: string },
  opts: { root?: string } = {},
): string {
  const ifname = inputs.interface;
  if (!interfaceSchema.safeParse(ifname).success)
    throw new RangeError(`invalid interface name ${JSON.stringify(ifname)}`);
  const policy = inputs.policy;
  let kind: string;
  let value = "";
  if (policy === "spread" || policy === "numa-local") kind = policy;
  else if ("cpus" in policy) {
    kind = "cpus";
    value = cpuList("policy.cpus", policy.cpus);
  } else {
    kind = "map";
    const seen = new Set<number>();
    value = Object.entries(policy.map)
      .map(([key, list]) => {
        const q = Number(key);
        if (!/^\d+$/.test(key) || seen.has(q))
          throw new RangeError(`policy.map: "${key}" is not a queue index given once`);
        seen.add(q);
        return `${q}=${cpuList(`policy.map["${key}"]`, list)}`;
      })
      .join(" ");
  }
  const exclude = inputs.exclude === undefined ? "" : cpuList("exclude", inputs.exclude);
  const spread = kind === "spread";
  const topo = spread || kind === "numa-local";
  const awk = [
    AWK.L,
    ...(kind === "numa-local" ? [AWK.Z] : []),
    ...(spread ? [AWK.H] : []),
    AWK.read + (topo ? AWK.node : ""),
    ...(spread ? [AWK.spreadRead] : topo ? [AWK.numaRead] : []),
    AWK.queues,
    `END{${topo ? AWK.candidates : ""}`,
    AWK.sorted,
    ...(spread
      ? [AWK.spread, AWK.out("", "B[V[q]%o]")]
      : topo
        ? [AWK.numa, AWK.out("", "z")]
        : kind === "cpus"
          ? [AWK.cpus, AWK.offline, AWK.out("", "y")]
          : [AWK.map, AWK.offline, AWK.out("if(!(q in B))continue;", "B[q]")]),
  ].join("\n");
  const vars = { f: ifname, e: topo ? exclude : "", y: value };
  const awkArgs = Object.entries(vars)
    .filter(([, v]) => v !== "")
    .map(([k, v]) => `-v ${k}=${shellQuote(v)}`)
    .join(" ");
  return [
    `R=${shellQuote(opts.root ?? "")};I=${shellQuote(ifname)};h=[0-9a-fA-F]`,
    'd=$R/sys/class/net/$I/device;v=$(readlink "$d/driver");v=${v##*/};a=$(readlink "$d")',
    "case $v in virtio_net)a=${a##*/}-;q='^(input|output)[.][0-9]+$';k='^virtio[0-9]+-(config|virtqueues|control)$';;",
    `ena)a=$I-Tx-Rx-;q='^[0-9]+$';k=${ENA_MGMT};;`,
    '*)echo "nettune: $I: driver ${v:-none} is not virtio_net or ena" >&2;exit 3;;esac',
    'm=$d/msi_irqs;[ -d "$m" ]||m=$d/../msi_irqs',
    // cat, not the shell's `read`: dash reads a byte at a time, and the kernel's cpulist files
    // (node*/cpulist, thread_siblings_list: binary attributes since 5.x) return nothing then.
    'r(){ l=$(cat "$1")&&[ -n "$l" ]&&echo "$2 $l";} 2>/dev/null',
    'S=$R/sys/devices/system;{ r "$S/cpu/online" o',
    ...(topo
      ? [
          `n=$d/numa_node;[ -r "$n" ]||n=$d/../numa_node;r "$n" u;for x in "$S"/node/node[0-9]*;do r "$x/cpulist" "n \${x##*/node}";done`,
        ]
      : []),
    ...(spread
      ? [
          `for x in "$S"/cpu/cpu[0-9]*;do r "$x/topology/thread_siblings_list" "s \${x##*/cpu}";done`,
        ]
      : []),
    '[ -d "$m" ]&&echo M&&for x in "$m"/*;do echo "m ${x##*/}";done',
    "grep -ls AFFINITY_MANAGED \"$R\"/sys/kernel/debug/irq/irqs/*|sed 's|.*/|g |'",
    `cat "$R/proc/interrupts";}|awk -v a="$a" -v x="$q" -v k="$k" ${awkArgs} '${awk}'`,
  ].join("\n");
}
