/**
 * Test program: runs the `pulumi new typescript`-style program of a user's project folder
 * (test/programs/newproject/index.ts, compiled there by the project's own tsconfig against
 * nettune as `npm pack` ships it) under the engine harness, which takes a module with a default
 * export. The stack configuration a user sets with `pulumi config set` is set here, then the
 * program's top-level code runs as the language host runs it: by requiring its main module.
 */
import * as pulumi from "@pulumi/pulumi";

export interface NewProjectArgs {
  /** The project's compiled main module (bin/index.js). */
  main: string;
  /** Stack configuration of the project's namespace, as `pulumi config set KEY VALUE`. */
  config: Record<string, string>;
}

export default function program(args: NewProjectArgs): Record<string, unknown> {
  for (const [key, value] of Object.entries(args.config)) {
    pulumi.runtime.setConfig(`${pulumi.getProject()}:${key}`, value);
  }
  // Several operations run in one driver process: each runs the program's code anew.
  delete require.cache[require.resolve(args.main)];
  return { ...(require(args.main) as Record<string, unknown>) };
}
