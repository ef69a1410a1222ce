// Command xdp-loader attaches, updates and detaches XDP programs on the host it runs on, for
// nettune's XdpProgram resource, which copies it to the host and runs it over SSH.
//
//	xdp-loader show     --dev IF [--pin-root /sys/fs/bpf/nettune]
//	xdp-loader attach   --dev IF --obj FILE --prog NAME --mode native|generic|hw --pin-dir DIR
//	                    [--expect-link-id N] [--replace-prog-id N] [--no-link | --require-link]
//	xdp-loader detach   --dev IF --pin-dir DIR
//	xdp-loader takeover --dev IF --save DIR
//	xdp-loader restore  --dev IF --save DIR [--over-pin-dir DIR]
//	xdp-loader counters --pin-dir DIR --map NAME
//
// attach takes --consts '{"name": value, ...}' (or the same in --consts-base64): values for the
// object's `volatile const` globals, set before the program is loaded.
//
// Every command prints one JSON object on stdout. A failure prints
// {"error": "...", "code": "..."} and exits 1 (2 for bad usage); the codes are stable and
// listed in errors.go. The loader never detaches or replaces a program it did not attach,
// except the one program named by --replace-prog-id after a takeover.
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
)

// mapNameRe is the form of a BPF map's name (the kernel keeps 15 characters; the ELF any).
var mapNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// mapPinPath is where attach pins a map of the object.
func mapPinPath(pinDir, name string) string { return pinDir + "/maps/" + name }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout))
}

// run executes one command and writes its JSON answer; it returns the exit status.
func run(args []string, stdout io.Writer) int {
	res, err := dispatch(args)
	enc := json.NewEncoder(stdout)
	if err != nil {
		var ce *cliError
		if !errors.As(err, &ce) {
			ce = &cliError{Code: codeFailed, Msg: err.Error()}
		}
		out := map[string]any{"error": ce.Msg, "code": ce.Code}
		for k, v := range ce.Extra {
			out[k] = v
		}
		_ = enc.Encode(out)
		if ce.Code == codeUsage {
			return 2
		}
		return 1
	}
	_ = enc.Encode(res)
	return 0
}

// opts are every command's flags; each command checks the ones it needs.
type opts struct {
	dev, obj, prog, mode, pinDir, save, pinRoot, overPinDir string
	mapName                                                 string
	consts                                                  map[string]any
	expectLinkID, replaceProgID                             uint64
	noLink, requireLink                                     bool
}

func dispatch(args []string) (any, error) {
	if len(args) == 0 {
		return nil, usagef("a command is required: show, attach, detach, takeover, restore or counters")
	}
	cmd := args[0]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o opts
	fs.StringVar(&o.dev, "dev", "", "interface")
	fs.StringVar(&o.obj, "obj", "", "BPF ELF object")
	fs.StringVar(&o.prog, "prog", "", "program (function) name in the object")
	fs.StringVar(&o.mode, "mode", "native", "native, generic or hw")
	fs.StringVar(&o.pinDir, "pin-dir", "", "this attachment's folder in bpffs")
	fs.StringVar(&o.save, "save", "", "folder in bpffs for a taken-over program")
	fs.StringVar(&o.pinRoot, "pin-root", defaultPinRoot, "where show looks for nettune's pins")
	fs.StringVar(&o.overPinDir, "over-pin-dir", "", "restore: replace the program pinned here atomically")
	fs.Uint64Var(&o.expectLinkID, "expect-link-id", 0, "attach: the pinned link must have this id")
	fs.Uint64Var(&o.replaceProgID, "replace-prog-id", 0, "attach: atomically replace this (taken-over) program")
	fs.StringVar(&o.mapName, "map", "", "counters: the pinned map's name")
	var consts, consts64 string
	fs.StringVar(&consts, "consts", "", "attach: JSON object of constant name to value")
	fs.StringVar(&consts64, "consts-base64", "", "attach: --consts in base64 (free of quotes, for unit files)")
	fs.BoolVar(&o.noLink, "no-link", false, "attach through netlink even where bpf links work")
	fs.BoolVar(&o.requireLink, "require-link", false, "attach: fail (links-unsupported) rather than fall back to netlink")
	if err := fs.Parse(args[1:]); err != nil {
		return nil, usagef("%s: %v", cmd, err)
	}
	if fs.NArg() > 0 {
		return nil, usagef("%s: unexpected argument %q", cmd, fs.Arg(0))
	}
	if consts64 != "" {
		if consts != "" {
			return nil, usagef("%s: --consts and --consts-base64 are one or the other", cmd)
		}
		raw, err := base64.StdEncoding.DecodeString(consts64)
		if err != nil {
			return nil, usagef("%s: --consts-base64 is not base64: %v", cmd, err)
		}
		consts = string(raw)
	}
	var err error
	if o.consts, err = parseConstants(consts); err != nil {
		return nil, err
	}
	if o.dev == "" && cmd != "counters" {
		return nil, usagef("%s: --dev is required", cmd)
	}
	need := func(name, v string) error {
		if v == "" {
			return usagef("%s: --%s is required", cmd, name)
		}
		return nil
	}
	switch cmd {
	case "show":
		return show(o)
	case "attach":
		for _, f := range [][2]string{{"obj", o.obj}, {"prog", o.prog}, {"pin-dir", o.pinDir}} {
			if err := need(f[0], f[1]); err != nil {
				return nil, err
			}
		}
		if _, ok := modeFlags[o.mode]; !ok {
			return nil, usagef("attach: --mode must be native, generic or hw, got %q", o.mode)
		}
		return attach(o)
	case "detach":
		if err := need("pin-dir", o.pinDir); err != nil {
			return nil, err
		}
		return detach(o)
	case "takeover":
		if err := need("save", o.save); err != nil {
			return nil, err
		}
		return takeover(o)
	case "counters":
		if err := need("pin-dir", o.pinDir); err != nil {
			return nil, err
		}
		if !mapNameRe.MatchString(o.mapName) {
			return nil, usagef("counters: --map must be a map's name, got %q", o.mapName)
		}
		return counters(o)
	case "restore":
		if err := need("save", o.save); err != nil {
			return nil, err
		}
		return restore(o)
	}
	return nil, usagef("unknown command %q (show, attach, detach, takeover, restore, counters)", cmd)
}

func usagef(format string, a ...any) error {
	return &cliError{Code: codeUsage, Msg: fmt.Sprintf(format, a...)}
}
