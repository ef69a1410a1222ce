/**
 * Default file and unit names unique per stack (src/schemas/names.ts), and the names a deployed
 * resource keeps.
 */
import { describe, expect, test } from "vitest";
import {
  defaultSysctlFileName,
  defaultUnitName,
  deployName,
  keepDeployedNames,
  stackTag,
  stackTagOfUrn,
} from "../../src/schemas/names";

const URN_PROD = "urn:pulumi:prod::shop::pulumi-nodejs:dynamic/nettune:NicOffloads::web";
const PROD = stackTag("shop", "prod")!;
const STAGING = stackTag("shop", "staging")!;

describe("stack tags", () => {
  test("6 hex digits of the project and stack; one per stack; none outside a program", () => {
    expect(PROD).toMatch(/^[0-9a-f]{6}$/);
    expect(PROD).not.toBe(STAGING);
    // The project counts too: two projects' "dev" stacks differ.
    expect(stackTag("shop", "dev")).not.toBe(stackTag("blog", "dev"));
    expect(stackTag("", "")).toBeUndefined();
    expect(stackTagOfUrn(URN_PROD)).toBe(PROD);
    // A child's URN (parent types before its own) has the same stack and project.
    expect(
      stackTagOfUrn(
        "urn:pulumi:prod::shop::nettune:index:NetworkTuning$pulumi-nodejs:dynamic/nettune:Mtu::gw-mtu",
      ),
    ).toBe(PROD);
    expect(stackTagOfUrn(undefined)).toBeUndefined();
    expect(stackTagOfUrn("not a urn")).toBeUndefined();
  });

  test("two stacks' resources of one name get different files and units", () => {
    expect(defaultSysctlFileName("web", PROD)).toBe(`90-nettune-web-${PROD}.conf`);
    expect(defaultSysctlFileName("web", STAGING)).not.toBe(defaultSysctlFileName("web", PROD));
    expect(defaultUnitName("NicOffloads", "web", PROD)).toBe(
      `nettune-nicoffloads-web-${PROD}.service`,
    );
    expect(defaultUnitName("NicOffloads", "web", undefined)).toBe(
      "nettune-nicoffloads-web.service",
    );
    expect(deployName("gw-mtu", PROD)).toBe(`gw-mtu-${PROD}`);
  });
});

describe("a deployed resource keeps its names", () => {
  const news = (unitName: string) => ({ interface: "eth0", unitName });
  /** What a SysctlSet "web" of stack prod checks to, deployed with `was`, sent with `now`. */
  const sysctlFile = (was: string, now: string) =>
    keepDeployedNames("SysctlSet", "web", URN_PROD, { fileName: was }, { fileName: now }).fileName;
  const prodUnit = defaultUnitName("NicOffloads", "web", PROD);

  test("one deployed by an earlier release keeps its untagged unit, file and resource name", () => {
    const legacy = "nettune-nicoffloads-web.service";
    expect(keepDeployedNames("NicOffloads", "web", URN_PROD, news(legacy), news(prodUnit))).toEqual(
      news(legacy),
    );
    expect(sysctlFile("90-nettune-web.conf", defaultSysctlFileName("web", PROD))).toBe(
      "90-nettune-web.conf",
    );
    expect(
      keepDeployedNames(
        "Mtu",
        "gw-mtu",
        URN_PROD,
        { resourceName: "gw-mtu" },
        { resourceName: `gw-mtu-${PROD}` },
      ),
    ).toEqual({ resourceName: "gw-mtu" });
  });

  test("one deployed under another stack name (a renamed stack) keeps its tag", () => {
    const before = defaultUnitName("NicOffloads", "web", STAGING);
    expect(keepDeployedNames("NicOffloads", "web", URN_PROD, news(before), news(prodUnit))).toEqual(
      news(before),
    );
  });

  test("a new resource, and names the user chose, are left as the program sends them", () => {
    // New: nothing deployed.
    expect(keepDeployedNames("NicOffloads", "web", URN_PROD, {}, news(prodUnit))).toEqual(
      news(prodUnit),
    );
    // The user names a file of their own: it is used, whatever was deployed.
    expect(sysctlFile("90-nettune-web.conf", "80-web.conf")).toBe("80-web.conf");
    // The deployed file was the user's own, and now the default is wanted: the default.
    expect(sysctlFile("80-web.conf", defaultSysctlFileName("web", PROD))).toBe(
      defaultSysctlFileName("web", PROD),
    );
    // Another resource's default name is not this one's.
    expect(
      keepDeployedNames(
        "NicOffloads",
        "web",
        URN_PROD,
        news("nettune-nicoffloads-api.service"),
        news(prodUnit),
      ),
    ).toEqual(news(prodUnit));
    // Kinds without default names, and no name, change nothing.
    expect(keepDeployedNames("Other", "web", URN_PROD, { a: 1 }, { a: 2 })).toEqual({ a: 2 });
    expect(keepDeployedNames("NicOffloads", undefined, URN_PROD, news("x"), news("y"))).toEqual(
      news("y"),
    );
  });
});
