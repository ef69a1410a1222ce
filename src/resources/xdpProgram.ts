import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { ConnectionArgs } from "./connection";
import { defaultUnitName } from "../schemas/names";
import { claimSettings, hostIdOf, ownerIdentity, programStackTag } from "./owners";
import { providerFor, refuseImport } from "./provider";
import { resourceUrn } from "./urn";

/**
 * The XDP program: C source compiled on the machine running Pulumi (clang `-target bpf -O2 -g`,
 * so the object carries BTF), or an object built elsewhere. Paths are relative to the working
 * directory of the Pulumi program.
 */
export type XdpProgramSource =
  | {
      /** A C file. Compile errors fail `pulumi preview` with clang's message. */
      readonly source: string;
      /** More clang arguments: `["-DPORT=22", "-Iinclude"]`. */
      readonly cflags?: readonly string[];
    }
  | {
      /** A BPF ELF object (`clang -target bpf -O2 -g -c prog.c -o prog.o`). */
      readonly objectPath: string;
    };

/** An integer (`bigint` past 2^53), a boolean, or a list of them for an array constant. */
export type XdpConstantValue =
  | number
  | bigint
  | boolean
  | readonly (number | bigint | boolean)[]
  | readonly (readonly (number | bigint | boolean)[])[];

/** Values for the object's `volatile const` globals, by name. */
export type XdpConstants = Readonly<Record<string, XdpConstantValue>>;

export interface XdpProgramArgs {
  /** How to reach the host: the fields of `@pulumi/command`'s `remote.ConnectionArgs` plus `sudo`. Stored as a secret. */
  readonly connection: pulumi.Input<ConnectionArgs>;
  /** The interface, e.g. `eth0`. Changing it replaces the resource (detached first). */
  readonly interface: pulumi.Input<string>;
  /**
   * The program, read when the resource is declared (not a `pulumi.Input`): its object's sha256
   * is what the diff sees, so an edited source previews as an update.
   */
  readonly program: XdpProgramSource;
  /** The `SEC("xdp")` function in the object to attach. */
  readonly programName: pulumi.Input<string>;
  /**
   * Values for the object's `volatile const` globals (in `.rodata`), set when the program is
   * loaded: the way to configure a program without editing its C. Integers, booleans and
   * arrays of them (shorter arrays are padded with zeros); a name the object does not have, or
   * a value that does not fit its C type, fails `up` before anything is attached. A change
   * replaces the program atomically, as a new object does.
   */
  readonly constants?: pulumi.Input<XdpConstants>;
  /**
   * `"native"` (default: in the driver, the fast path), `"generic"` (in the stack, any interface,
   * slower) or `"hw"` (offloaded to the NIC: nfp). Changing it replaces the resource: the kernel
   * has no atomic mode change.
   */
  readonly mode?: pulumi.Input<"native" | "generic" | "hw">;
  /**
   * Replace a program nettune did not attach (by default such a program fails preview, naming
   * it). The loader keeps the foreign program pinned; destroy puts it back. Default false.
   */
  readonly takeOver?: pulumi.Input<boolean>;
  /**
   * Keep the object and the loader on the host and attach again at every boot through
   * `nettune-xdpprogram-<name>-<tag>.service` (`<tag>`: its stack\'s); removed on destroy. Default true.
   */
  readonly persist?: pulumi.Input<boolean>;
  /**
   * When the program goes on the interface the SSH connection runs over, the host undoes the
   * attach by itself after this many seconds (the previous program back, or detached, and the
   * boot unit as it was) unless a new SSH connection confirmed it; the operation then fails
   * saying so. 5 to 3600, default 60.
   */
  readonly rollbackAfter?: pulumi.Input<number>;
}

/** The program attached. */
export interface XdpAttached {
  progId: number;
  /** The bpf_link holding it (pinned in bpffs); null when attached through netlink. */
  linkId: number | null;
  tag: string;
  /** The kernel's name of the program (at most 15 characters). */
  name: string;
  mode: "native" | "generic" | "hw";
  via: "link" | "netlink";
}

/** bigint becomes a string of digits: Pulumi's wire format has no bigint. */
function serializeConstants(c: XdpConstants | undefined): Record<string, unknown> | undefined {
  if (c === undefined || c === null) return undefined;
  const one = (v: unknown): unknown =>
    typeof v === "bigint" ? v.toString() : Array.isArray(v) ? v.map(one) : v;
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [k, one(v)]));
}

/** Where compiled objects are kept, by the hash of what went into them. */
function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "nettune", "xdp");
}

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

let clangVersion: string | undefined;

/** The clang include folder for the machine's asm/ headers (Debian's multiarch layout). */
function archIncludes(): string[] {
  const triple = os.arch() === "arm64" ? "aarch64-linux-gnu" : "x86_64-linux-gnu";
  const dir = `/usr/include/${triple}`;
  return fs.existsSync(dir) ? [`-I${dir}`] : [];
}

/**
 * Compiles `source` to a BPF object and returns its bytes; cached by the hash of the clang
 * version, the arguments and the text of the source and every header it includes.
 *
 * @throws Error naming the resource with clang's own message
 */
export function compileXdp(
  resource: string,
  source: string,
  cflags: readonly string[] = [],
): Buffer {
  const file = path.resolve(source);
  if (!fs.existsSync(file))
    throw new Error(`XdpProgram ${resource}: program.source: no file ${file}`);
  if (clangVersion === undefined) {
    const v = spawnSync("clang", ["--version"], { encoding: "utf8" });
    if (v.error || v.status !== 0)
      throw new Error(
        `XdpProgram ${resource}: clang is not installed on this machine; it compiles program.source ` +
          "(Debian/Ubuntu: apt-get install clang llvm libbpf-dev), or pass program: { objectPath } instead",
      );
    clangVersion = v.stdout;
  }
  const args = [
    "-target",
    "bpf",
    "-O2",
    "-g",
    // The same object whatever folder the source is in: no absolute paths in its debug info.
    `-fdebug-prefix-map=${path.dirname(file)}=.`,
    ...archIncludes(),
    ...cflags,
  ];
  const dir = cacheDir();
  const key = sha256(JSON.stringify([clangVersion, args, fs.readFileSync(file, "utf8")]));
  const obj = path.join(dir, `${key}.o`);
  const depsFile = path.join(dir, `${key}.deps.json`);
  // A cached object counts while every header it was built from is unchanged.
  try {
    const deps = JSON.parse(fs.readFileSync(depsFile, "utf8")) as Record<string, string>;
    const fresh = Object.entries(deps).every(
      ([f, h]) => fs.existsSync(f) && sha256(fs.readFileSync(f)) === h,
    );
    if (fresh && fs.existsSync(obj)) return fs.readFileSync(obj);
  } catch {
    // not cached
  }
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${obj}.${process.pid}.tmp`;
  const mf = `${tmp}.d`;
  const res = spawnSync("clang", [...args, "-MD", "-MF", mf, "-c", file, "-o", tmp], {
    encoding: "utf8",
    cwd: path.dirname(file),
  });
  if (res.error || res.status !== 0) {
    fs.rmSync(tmp, { force: true });
    fs.rmSync(mf, { force: true });
    throw new Error(
      `XdpProgram ${resource}: clang could not compile ${source}:\n${(res.stderr || String(res.error)).trim()}`,
    );
  }
  const deps: Record<string, string> = {};
  const text = fs.readFileSync(mf, "utf8").replace(/\\\n/g, " ");
  for (const f of text
    .slice(text.indexOf(":") + 1)
    .split(/\s+/)
    .filter(Boolean)) {
    const abs = path.resolve(path.dirname(file), f);
    if (fs.existsSync(abs)) deps[abs] = sha256(fs.readFileSync(abs));
  }
  fs.rmSync(mf, { force: true });
  fs.renameSync(tmp, obj);
  fs.writeFileSync(depsFile, JSON.stringify(deps));
  return fs.readFileSync(obj);
}

/** The object of `program`: compiled, or read. */
export function xdpObjectOf(resource: string, program: XdpProgramSource): Buffer {
  if (program === null || typeof program !== "object")
    throw new Error(`XdpProgram ${resource}: program must be { source } or { objectPath }`);
  if ("source" in program && typeof program.source === "string")
    return compileXdp(resource, program.source, program.cflags ?? []);
  if ("objectPath" in program && typeof program.objectPath === "string") {
    const file = path.resolve(program.objectPath);
    if (!fs.existsSync(file))
      throw new Error(`XdpProgram ${resource}: program.objectPath: no file ${file}`);
    const data = fs.readFileSync(file);
    if (data.subarray(0, 4).toString("latin1") !== "\x7fELF")
      throw new Error(`XdpProgram ${resource}: program.objectPath: ${file} is not an ELF object`);
    return data;
  }
  throw new Error(
    `XdpProgram ${resource}: program must be { source: "prog.c" } or { objectPath: "prog.o" }`,
  );
}

/**
 * An XDP program on one interface, attached through nettune's on-host loader as a bpf_link
 * pinned in bpffs (netlink where the kernel has no XDP links); a new object replaces the program
 * atomically (the link stays). A program nettune did not attach fails preview, naming it,
 * unless `takeOver`. Re-attached at boot; destroy detaches it and removes the unit, the object
 * and the pins.
 *
 * ```ts
 * new nettune.XdpProgram("count", { connection, interface: "eth0",
 *   program: { source: "./xdp/pass_count.c" }, programName: "xdp_pass_count" });
 * ```
 */
export class XdpProgram extends pulumi.dynamic.Resource {
  /** The interface, as declared. */
  declare public readonly interface: pulumi.Output<string>;
  /** The program's function in the object, as declared. */
  declare public readonly programName: pulumi.Output<string>;
  /** The attach mode, as declared. */
  declare public readonly mode: pulumi.Output<"native" | "generic" | "hw">;
  /** The constants the program was loaded with. */
  declare public readonly constants: pulumi.Output<Record<string, unknown>>;
  /** sha256 of the object; `"none"` after a refresh that found the program gone. */
  declare public readonly objectSha256: pulumi.Output<string>;
  /** The attached program; absent after a refresh that found it gone. */
  declare public readonly attached: pulumi.Output<XdpAttached | undefined>;
  /** The object's maps, pinned under `<pinDir>/maps/<name>`. */
  declare public readonly maps: pulumi.Output<string[]>;
  /** The resource's folder in bpffs: `/sys/fs/bpf/nettune/<id>`. */
  declare public readonly pinDir: pulumi.Output<string>;
  /** The object on the host. */
  declare public readonly objectPath: pulumi.Output<string>;
  /** The systemd unit file (`/etc/systemd/system/…`) that attaches the program at boot, or null with `persist: false`. */
  declare public readonly unitPath: pulumi.Output<string | null>;
  /** The program nettune took over (`takeOver`), put back on destroy; null when none. */
  declare public readonly takenOver: pulumi.Output<{
    progId: number;
    name: string;
    tag: string;
    mode: string;
  } | null>;
  /** Messages from the last operation. */
  declare public readonly warnings: pulumi.Output<string[]>;

  constructor(name: string, args: XdpProgramArgs, opts?: pulumi.CustomResourceOptions) {
    refuseImport("XdpProgram", name, opts);
    const object = xdpObjectOf(name, args.program);
    super(
      providerFor("XdpProgram"),
      name,
      {
        // Names the resource in check errors; the provider drops it (not part of the state).
        __nettuneName: name,
        // Who owns its settings across stacks (the ownership record on the host).
        __nettuneOwner: ownerIdentity("XdpProgram", name),
        // Lets the provider show its messages under this resource (./urn.ts).
        __nettuneUrn: resourceUrn("XdpProgram", name, opts),
        connection: pulumi.secret(args.connection),
        interface: args.interface,
        programName: args.programName,
        constants: pulumi.output(args.constants).apply(serializeConstants),
        mode: args.mode,
        takeOver: args.takeOver,
        persist: args.persist,
        rollbackAfter: args.rollbackAfter,
        unitName: defaultUnitName("XdpProgram", name, programStackTag()),
        objectSha256: sha256(object),
        // Secret: the preview prints [secret], not the blob.
        objectBase64: pulumi.secret(object.toString("base64")),
        attached: undefined,
        maps: undefined,
        pinDir: undefined,
        objectPath: undefined,
        unitPath: undefined,
        takenOver: undefined,
        warnings: undefined,
      },
      { ...opts, additionalSecretOutputs: ["connection", "objectBase64"] },
      "nettune",
      "XdpProgram",
    );
    // One program per interface and host.
    pulumi
      .all([pulumi.unsecret(pulumi.output(args.connection)), pulumi.output(args.interface)])
      .apply(([conn, ifname]) => {
        const hostId = hostIdOf(conn);
        if (!hostId || typeof ifname !== "string") return;
        claimSettings(`XdpProgram ${name}`, hostId, [{ id: `xdp:${ifname}`, input: "interface" }]);
      });
  }
}
