/**
 * Test program: XdpProgram resources on sandbox hosts, shaped by the test's arguments. Each
 * resource's outputs are exported as `<name>_<output>`.
 */
import * as nettune from "nettune";
import { connectionOf, type HostArg } from "./sysctl";

export interface XdpArg {
  name: string;
  host: HostArg;
  interface: string;
  /** A C file (compiled by the resource class) or, with `object: true`, an object. */
  source?: string;
  objectPath?: string;
  cflags?: string[];
  /** Without a library program: the program's name in the object. */
  programName?: string;
  /** A program of nettune.xdp with its config, instead of source/objectPath/programName. */
  library?: { name: "synFlood" | "dropPorts" | "allowList"; config: Record<string, unknown> };
  constants?: Record<string, number | boolean | number[]>;
  mode?: "native" | "generic" | "hw";
  takeOver?: boolean;
  persist?: boolean;
  rollbackAfter?: number;
}

export interface XdpProgramArgs {
  xdps?: XdpArg[];
}

export default function program(args: XdpProgramArgs): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of args.xdps ?? []) {
    const lib = a.library
      ? (nettune.xdp[a.library.name] as (c: unknown) => nettune.xdp.XdpLibraryProgram)(
          a.library.config,
        )
      : undefined;
    const r = new nettune.XdpProgram(a.name, {
      connection: connectionOf(a.host),
      interface: a.interface,
      ...(lib ?? {
        program:
          a.objectPath !== undefined
            ? { objectPath: a.objectPath }
            : { source: a.source ?? "", cflags: a.cflags },
        programName: a.programName ?? "",
        constants: a.constants,
      }),
      mode: a.mode,
      takeOver: a.takeOver,
      persist: a.persist,
      rollbackAfter: a.rollbackAfter,
    });
    out[`${a.name}_attached`] = r.attached;
    out[`${a.name}_constants`] = r.constants;
    out[`${a.name}_objectSha256`] = r.objectSha256;
    out[`${a.name}_maps`] = r.maps;
    out[`${a.name}_pinDir`] = r.pinDir;
    out[`${a.name}_objectPath`] = r.objectPath;
    out[`${a.name}_unitPath`] = r.unitPath;
    out[`${a.name}_takenOver`] = r.takenOver;
    out[`${a.name}_warnings`] = r.warnings;
  }
  return out;
}
