/**
 * The xdp-loader command lines and the parsers of its JSON, on real output of the loader in a
 * sandbox host (kernel 6.18, veth) captured while it was built.
 */
import { describe, expect, it } from "vitest";

import { ParseError } from "../../src/host/errors";
import {
  LOADER_HOST_PATH,
  parseAttach,
  parseDetach,
  parseRestore,
  parseShow,
  parseTakeover,
  pinDirFor,
  renderAttach,
  renderDetach,
  renderRestore,
  renderShow,
  renderTakeover,
  XdpLoaderError,
} from "../../src/host/xdpLoader";

const SHOW_NONE = `{"attached":null,"programs":[],"multi":false,"ifindex":2,"mtu":1500,"driver":"veth","bpffs":true}\n`;
const SHOW_LINK = `{"attached":{"progId":3658,"name":"xdp_pass_count","tag":"0afa56fcd9325709","mode":"native","linkId":89,"pinned":"/sys/fs/bpf/nettune/t1/link"},"programs":[{"progId":3658,"name":"xdp_pass_count","tag":"0afa56fcd9325709","mode":"native","linkId":89,"pinned":"/sys/fs/bpf/nettune/t1/link"}],"multi":false,"ifindex":2,"mtu":1500,"driver":"veth","bpffs":true}\n`;
const SHOW_FOREIGN = `{"attached":{"progId":3665,"name":"xdp_foreign","tag":"614b434cd8324ecc","mode":"generic","linkId":null,"pinned":null},"programs":[{"progId":3665,"name":"xdp_foreign","tag":"614b434cd8324ecc","mode":"generic","linkId":null,"pinned":null}],"multi":false,"ifindex":2,"mtu":1500,"driver":"veth","bpffs":true}\n`;
const ATTACH_UPDATE = `{"progId":3660,"linkId":89,"tag":"f55f564166dc0113","name":"xdp_pass_count","mode":"native","via":"link","maps":["pkt_count"],"reusedMaps":["pkt_count"],"pinDir":"/sys/fs/bpf/nettune/t1","updated":true,"previousProgId":3658,"mountedBpffs":false}\n`;
const ATTACH_NETLINK = `{"progId":3672,"linkId":null,"tag":"0afa56fcd9325709","name":"xdp_pass_count","mode":"native","via":"netlink","maps":["pkt_count"],"reusedMaps":[],"pinDir":"/sys/fs/bpf/nettune/n1","updated":false,"previousProgId":null,"mountedBpffs":false,"linkFallback":"--no-link"}\n`;
const DETACH = `{"detached":true,"alreadyGone":false,"progId":3660,"linkId":89,"pinDir":"/sys/fs/bpf/nettune/t1"}\n`;
const DETACH_GONE = `{"detached":false,"alreadyGone":true,"progId":null,"linkId":null,"pinDir":"/sys/fs/bpf/nettune/n1"}\n`;
const TAKEOVER = `{"dev":"eth0","ifindex":2,"progId":3679,"name":"xdp_foreign","tag":"614b434cd8324ecc","mode":"generic","flags":2,"saveDir":"/sys/fs/bpf/nettune/t1save","mountedBpffs":false}\n`;
const RESTORE_OVER = `{"restored":true,"alreadyGone":false,"progId":3679,"mode":"generic","replaced":3687}\n`;
const RESTORE_GONE = `{"restored":false,"alreadyGone":true,"progId":0,"mode":"","replaced":null}\n`;
const ERR_FOREIGN = `{"code":"foreign-program","error":"program 3665 is attached in generic mode and is not ours; take it over first","mode":"generic","progId":3665}\n`;
const ERR_MTU = `{"code":"mtu-too-large","driver":"veth","error":"attaching xdp_pass_count in native mode on xt0: veth: Peer MTU is too large to set XDP (numerical result out of range)","mtu":9000}\n`;

describe("xdp-loader command lines", () => {
  it("renders every command as an argument list", () => {
    expect(renderShow("eth0")).toEqual([LOADER_HOST_PATH, "show", "--dev", "eth0"]);
    expect(
      renderAttach({
        dev: "eth0",
        obj: "/tmp/x.o",
        prog: "xdp_main",
        mode: "native",
        pinDir: pinDirFor("ddos-filter"),
        expectLinkId: 89,
      }),
    ).toEqual([
      LOADER_HOST_PATH,
      "attach",
      "--dev",
      "eth0",
      "--obj",
      "/tmp/x.o",
      "--prog",
      "xdp_main",
      "--mode",
      "native",
      "--pin-dir",
      "/sys/fs/bpf/nettune/ddos-filter",
      "--expect-link-id",
      "89",
    ]);
    expect(
      renderAttach(
        {
          dev: "eth0",
          obj: "o",
          prog: "p",
          mode: "generic",
          pinDir: "d",
          replaceProgId: 7,
          noLink: true,
        },
        "/tmp/l",
      ),
    ).toEqual([
      "/tmp/l",
      "attach",
      "--dev",
      "eth0",
      "--obj",
      "o",
      "--prog",
      "p",
      "--mode",
      "generic",
      "--pin-dir",
      "d",
      "--replace-prog-id",
      "7",
      "--no-link",
    ]);
    expect(renderDetach("eth0", "d")).toEqual([
      LOADER_HOST_PATH,
      "detach",
      "--dev",
      "eth0",
      "--pin-dir",
      "d",
    ]);
    expect(renderTakeover("eth0", "s")).toEqual([
      LOADER_HOST_PATH,
      "takeover",
      "--dev",
      "eth0",
      "--save",
      "s",
    ]);
    expect(renderRestore("eth0", "s", "d")).toEqual([
      LOADER_HOST_PATH,
      "restore",
      "--dev",
      "eth0",
      "--save",
      "s",
      "--over-pin-dir",
      "d",
    ]);
  });

  it("refuses bad interface names and pin ids (bpffs reserves dots)", () => {
    expect(() => renderShow("eth0; reboot")).toThrow(RangeError);
    expect(() => pinDirFor("a.b")).toThrow(RangeError);
    expect(() => pinDirFor("../x")).toThrow(RangeError);
    expect(pinDirFor("web_1-xdp")).toBe("/sys/fs/bpf/nettune/web_1-xdp");
  });
});

describe("xdp-loader output", () => {
  it("reads show: nothing, our link, a foreign netlink program", () => {
    expect(parseShow(SHOW_NONE)).toEqual({
      attached: null,
      programs: [],
      multi: false,
      ifindex: 2,
      mtu: 1500,
      driver: "veth",
      bpffs: true,
    });
    const ours = parseShow(SHOW_LINK);
    expect(ours.attached).toEqual({
      progId: 3658,
      name: "xdp_pass_count",
      tag: "0afa56fcd9325709",
      mode: "native",
      linkId: 89,
      pinned: "/sys/fs/bpf/nettune/t1/link",
    });
    const foreign = parseShow(SHOW_FOREIGN);
    expect(foreign.attached).toMatchObject({ mode: "generic", linkId: null, pinned: null });
  });

  it("reads attach, detach, takeover and restore", () => {
    expect(parseAttach(ATTACH_UPDATE)).toMatchObject({
      progId: 3660,
      linkId: 89,
      via: "link",
      updated: true,
      previousProgId: 3658,
      reusedMaps: ["pkt_count"],
    });
    const nl = parseAttach(ATTACH_NETLINK);
    expect(nl).toMatchObject({ linkId: null, via: "netlink", linkFallback: "--no-link" });
    expect(parseDetach(DETACH)).toEqual({
      detached: true,
      alreadyGone: false,
      progId: 3660,
      linkId: 89,
      pinDir: "/sys/fs/bpf/nettune/t1",
    });
    expect(parseDetach(DETACH_GONE)).toMatchObject({
      detached: false,
      alreadyGone: true,
      progId: null,
    });
    expect(parseTakeover(TAKEOVER)).toMatchObject({ progId: 3679, mode: "generic", flags: 2 });
    expect(parseRestore(RESTORE_OVER)).toEqual({
      restored: true,
      alreadyGone: false,
      progId: 3679,
      mode: "generic",
      replaced: 3687,
    });
    expect(parseRestore(RESTORE_GONE)).toMatchObject({ restored: false, mode: "" });
  });

  it("turns the loader's errors into XdpLoaderError with the code and the extra fields", () => {
    let err: unknown;
    try {
      parseAttach(ERR_FOREIGN);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(XdpLoaderError);
    expect((err as XdpLoaderError).code).toBe("foreign-program");
    expect((err as XdpLoaderError).extra).toEqual({ mode: "generic", progId: 3665 });
    expect(() => parseAttach(ERR_MTU)).toThrow(/Peer MTU is too large.*\(mtu-too-large\)/);
  });

  it("refuses output that is not the loader's", () => {
    expect(() => parseShow("")).toThrow(ParseError);
    expect(() => parseShow("segfault")).toThrow(ParseError);
    expect(() => parseShow("[]")).toThrow(ParseError);
    expect(() =>
      parseAttach(ATTACH_UPDATE.replace('"via":"link"', '"via":"carrier pigeon"')),
    ).toThrow(/"via" is not link or netlink/);
    expect(() => parseShow(SHOW_LINK.replace(/"mode":"native"/g, '"mode":"turbo"'))).toThrow(
      ParseError,
    );
  });
});
