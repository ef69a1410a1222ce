package main

// Pure decisions, unit-tested without a kernel: whose program is attached, what an attach
// must do about it, kernel versions.

import (
	"fmt"
	"strconv"
	"strings"
)

// modeFlags maps a mode to its XDP_FLAGS_* bit (netlink and bpf_link use the same bits).
var modeFlags = map[string]uint32{"native": xdpFlagsDrvMode, "generic": xdpFlagsSkbMode, "hw": xdpFlagsHwMode}

// modeOrder is the order modes are listed in, the first being the one `show` calls attached.
var modeOrder = []string{"native", "generic", "hw"}

// occupant is the program that an attach in mode would collide with: the hw slot for hw, and
// the one native-or-generic slot otherwise (the kernel never holds both). 0 = free.
func occupant(st xdpState, mode string) (id uint32, occMode string) {
	if mode == "hw" {
		return st.Progs["hw"], "hw"
	}
	for _, m := range []string{"native", "generic"} {
		if id := st.Progs[m]; id != 0 {
			return id, m
		}
	}
	return 0, ""
}

// modeOf is the mode in which program id is attached ("" when it is not attached).
func modeOf(st xdpState, id uint32) string {
	if id == 0 {
		return ""
	}
	for _, m := range modeOrder {
		if st.Progs[m] == id {
			return m
		}
	}
	return ""
}

// anyAttached says whether any program is attached in any mode.
func anyAttached(st xdpState) bool {
	for _, id := range st.Progs {
		if id != 0 {
			return true
		}
	}
	return false
}

// pinState is what a pin dir holds: our bpf_link (kind "link", with the interface it is
// attached to, 0 once the device went away, and its program) or a program we attached through
// netlink (kind "prog"), or nothing (kind "").
type pinState struct {
	Kind    string
	LinkID  uint32
	Ifindex uint32
	ProgID  uint32
}

// Actions an attach takes.
const (
	actCreate         = "create"          // nothing of ours attached: new link (or netlink "only if none")
	actUpdateLink     = "update-link"     // our pinned link: swap its program atomically
	actUpdateProg     = "update-prog"     // our netlink-attached program: replace it atomically
	actReplaceForeign = "replace-foreign" // the taken-over program named by --replace-prog-id
)

// decideAttach says what attaching in mode on ifindex must do, given the interface's state and
// the pin dir's. stale reports that the pin dir holds a leftover (a link whose device is gone,
// a program no longer attached) to be cleared before creating.
func decideAttach(st xdpState, ifindex uint32, mode string, p pinState, replaceProgID, expectLinkID uint32) (action string, stale bool, err *cliError) {
	if expectLinkID != 0 && (p.Kind != "link" || p.LinkID != expectLinkID) {
		got := "no link"
		if p.Kind == "link" {
			got = fmt.Sprintf("link %d", p.LinkID)
		} else if p.Kind == "prog" {
			got = "a netlink-attached program"
		}
		return "", false, errf(codeLinkMismatch, "expected pinned link %d, the pin dir holds %s", expectLinkID, got)
	}
	switch p.Kind {
	case "link":
		if p.Ifindex != 0 && p.Ifindex != ifindex {
			return "", false, errf(codePinDirInUse, "the pin dir's link is attached to interface index %d, not %d", p.Ifindex, ifindex)
		}
		if p.Ifindex == ifindex {
			m := modeOf(st, p.ProgID)
			switch {
			case m == "":
				return "", false, errf(codeAttachFailed, "the pinned link %d is on this interface but its program %d is not reported attached", p.LinkID, p.ProgID)
			case m != mode:
				return "", false, modeChange(m, mode)
			}
			return actUpdateLink, false, nil
		}
		stale = true // the link's device went away
	case "prog":
		if m := modeOf(st, p.ProgID); m != "" {
			if m != mode {
				return "", false, modeChange(m, mode)
			}
			return actUpdateProg, false, nil
		}
		stale = true
	}
	id, occMode := occupant(st, mode)
	switch {
	case id == 0:
		return actCreate, stale, nil
	case replaceProgID != 0 && id == replaceProgID:
		if occMode != mode {
			return "", false, modeChange(occMode, mode)
		}
		return actReplaceForeign, stale, nil
	}
	return "", false, &cliError{Code: codeForeign,
		Msg:   fmt.Sprintf("program %d is attached in %s mode and is not ours; take it over first", id, occMode),
		Extra: map[string]any{"progId": id, "mode": occMode}}
}

func modeChange(from, to string) *cliError {
	return errf(codeModeChange, "attached in %s mode; %s mode needs a detach and a new attach (no atomic mode change)", from, to)
}

// kernelAtLeast reports whether a uname release ("6.1.0-31-cloud-amd64") is >= major.minor.
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(leadingDigits(parts[0]))
	mi, err2 := strconv.Atoi(leadingDigits(parts[1]))
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}
