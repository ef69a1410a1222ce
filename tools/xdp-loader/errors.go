package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// Stable error codes: nettune matches on these, never on the message.
const (
	codeUsage            = "usage"             // bad command line
	codeFailed           = "failed"            // anything without a more precise code
	codeNoDevice         = "no-such-device"    // --dev does not exist
	codeNoBpffs          = "no-bpffs"          // no bpffs at /sys/fs/bpf and mounting one failed
	codeBadObject        = "bad-object"        // the ELF object cannot be read
	codeNoProgram        = "no-such-program"   // --prog is not an XDP program of the object
	codeVerifier         = "verifier"          // the kernel refused to load the program
	codeForeign          = "foreign-program"   // another program is attached that is not ours
	codeForeignLink      = "foreign-link"      // takeover: the program is held by someone's bpf_link
	codeNotOurs          = "not-ours"          // detach: what is attached is not what pin-dir holds
	codePinDirInUse      = "pin-dir-in-use"    // the pin dir's link is attached to another interface
	codeModeChange       = "mode-change"       // update asks for another mode: needs detach + attach
	codeLinkMismatch     = "link-mismatch"     // --expect-link-id does not match the pinned link
	codeLinksUnsupported = "links-unsupported" // bpf links for XDP needed (--expect-link-id) but absent
	codeMtuTooLarge      = "mtu-too-large"     // the driver refuses XDP at this MTU
	codeModeUnsupported  = "mode-unsupported"  // the driver has no XDP in this mode
	codeAttachFailed     = "attach-failed"     // the kernel refused the attach for another reason
	codeNothingAttached  = "nothing-attached"  // takeover: no program on the interface
	codeSaveExists       = "save-exists"       // takeover: --save already holds another program
	codeNoSave           = "no-save"           // restore: --save holds no taken-over program
	codeBadConstant      = "bad-constant"      // --consts names no constant of the object, or a value does not fit
	codeNoMap            = "no-such-map"       // counters: no array of u64 counters pinned by that name
)

// cliError is a failure with its code; Extra adds fields to the error JSON.
type cliError struct {
	Code  string
	Msg   string
	Extra map[string]any
}

func (e *cliError) Error() string { return e.Msg }

func errf(code, format string, a ...any) *cliError {
	return &cliError{Code: code, Msg: fmt.Sprintf(format, a...)}
}

// classifyAttach turns the kernel's refusal of an attach into a code. The extack message of a
// netlink attach is the best evidence; errno alone is a fallback (bpf links give only errno).
func classifyAttach(err error, mode string) string {
	msg := strings.ToLower(err.Error())
	var errno syscall.Errno
	errors.As(err, &errno)
	switch {
	case strings.Contains(msg, "mtu") || errno == syscall.ERANGE:
		// veth: "Peer MTU is too large to set XDP" (ERANGE); virtio_net: "MTU too large to
		// enable XDP" (EINVAL); others say "MTU" too.
		return codeMtuTooLarge
	case errno == syscall.EBUSY || errno == syscall.EEXIST:
		return codeForeign
	case errno == syscall.EOPNOTSUPP || strings.Contains(msg, "does not support"):
		return codeModeUnsupported
	}
	return codeAttachFailed
}
