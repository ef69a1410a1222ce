package main

// The five commands. Layout of a pin dir (one per XdpProgram resource):
//
//	DIR/link        our bpf_link (kernels >= 5.9): the attachment itself; unpinning it detaches
//	DIR/prog        or, where links are unsupported (or after a takeover), our program,
//	                attached through netlink
//	DIR/maps/NAME   the object's maps (not .rodata/.data/.bss); kept across updates when the
//	                new object declares a compatible map of the same name
//
// A save dir (takeover) holds DIR/prog, the foreign program, and DIR/meta, what to re-attach
// it with. bpffs holds no regular files and refuses names with dots (reserved for the kernel),
// so meta is a symlink whose target is the JSON text (`readlink DIR/meta`).

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

const (
	bpffsRoot      = "/sys/fs/bpf"
	defaultPinRoot = "/sys/fs/bpf/nettune"
)

// ---- small helpers --------------------------------------------------------------------------

func ifaceIndex(dev string) (int, error) {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return 0, errf(codeNoDevice, "interface %s: %v", dev, err)
	}
	return ifi.Index, nil
}

// driverName asks ethtool's GDRVINFO ("veth", "virtio_net"); "" when the device has none.
func driverName(dev string) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, dev)
	if err != nil {
		return ""
	}
	return unix.ByteSliceToString(info.Driver[:])
}

func isBpffs(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && uint32(st.Type) == unix.BPF_FS_MAGIC
}

// ensureBpffs mounts bpffs at /sys/fs/bpf when nothing is mounted there; it reports whether it
// mounted one.
func ensureBpffs() (bool, error) {
	if isBpffs(bpffsRoot) {
		return false, nil
	}
	if err := unix.Mount("bpf", bpffsRoot, "bpf", 0, "mode=0700"); err != nil {
		return false, errf(codeNoBpffs, "no bpffs at %s and mounting one failed: %v", bpffsRoot, err)
	}
	return true, nil
}

// mkPinDir creates dir and checks it lies on a bpffs.
func mkPinDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return errf(codeNoBpffs, "creating %s: %v", dir, err)
	}
	if !isBpffs(dir) {
		return errf(codeNoBpffs, "%s is not on a bpffs", dir)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// progView describes one attached program.
type progView struct {
	ProgID uint32  `json:"progId"`
	Name   string  `json:"name"`
	Tag    string  `json:"tag"`
	Mode   string  `json:"mode"`
	LinkID *uint32 `json:"linkId"`
	Pinned *string `json:"pinned"`
}

// progNameTag reads a program's kernel name (at most 15 characters) and tag.
func progNameTag(id uint32) (name, tag string) {
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		return "", ""
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return "", ""
	}
	return info.Name, info.Tag
}

// xdpLinks maps program id → id of the XDP bpf_link holding it on ifindex.
func xdpLinks(ifindex int) map[uint32]uint32 {
	out := map[uint32]uint32{}
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil || info.Type != link.XDPType {
			continue
		}
		if x := info.XDP(); x != nil && int(x.Ifindex) == ifindex {
			out[uint32(info.Program)] = uint32(info.ID)
		}
	}
	return out
}

// readPinDir says what a pin dir holds (see pinState); a link or program that cannot be opened
// counts as absent.
func readPinDir(dir string) (pinState, error) {
	if exists(filepath.Join(dir, "link")) {
		l, err := link.LoadPinnedLink(filepath.Join(dir, "link"), nil)
		if err != nil {
			return pinState{}, fmt.Errorf("opening %s/link: %w", dir, err)
		}
		defer l.Close()
		info, err := l.Info()
		if err != nil {
			return pinState{}, fmt.Errorf("link info: %w", err)
		}
		p := pinState{Kind: "link", LinkID: uint32(info.ID), ProgID: uint32(info.Program)}
		if x := info.XDP(); x != nil {
			p.Ifindex = x.Ifindex
		}
		return p, nil
	}
	if exists(filepath.Join(dir, "prog")) {
		id, err := pinnedProgID(filepath.Join(dir, "prog"))
		if err != nil {
			return pinState{}, err
		}
		return pinState{Kind: "prog", ProgID: id}, nil
	}
	return pinState{}, nil
}

func pinnedProgID(path string) (uint32, error) {
	p, err := ebpf.LoadPinnedProgram(path, nil)
	if err != nil {
		return 0, fmt.Errorf("opening %s: %w", path, err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return 0, err
	}
	id, _ := info.ID()
	return uint32(id), nil
}

// ---- show -----------------------------------------------------------------------------------

type showResult struct {
	Attached *progView `json:"attached"`
	// Programs lists every attached program: one, or two when the kernel reports several modes
	// (an offloaded program beside a native or generic one).
	Programs []progView `json:"programs"`
	Multi    bool       `json:"multi"`
	Ifindex  int        `json:"ifindex"`
	MTU      uint32     `json:"mtu"`
	Driver   string     `json:"driver"`
	Bpffs    bool       `json:"bpffs"`
}

func show(o opts) (any, error) {
	ifindex, err := ifaceIndex(o.dev)
	if err != nil {
		return nil, err
	}
	st, err := getXdp(ifindex)
	if err != nil {
		return nil, err
	}
	res := showResult{Programs: []progView{}, Multi: st.Attached == xdpAttachedMulti, Ifindex: ifindex,
		MTU: st.MTU, Driver: driverName(o.dev), Bpffs: isBpffs(bpffsRoot)}
	if !anyAttached(st) {
		return res, nil
	}
	links := xdpLinks(ifindex)
	pins := scanPins(o.pinRoot)
	for _, m := range modeOrder {
		id := st.Progs[m]
		if id == 0 {
			continue
		}
		v := progView{ProgID: id, Mode: m}
		v.Name, v.Tag = progNameTag(id)
		if lid, ok := links[id]; ok {
			v.LinkID = &lid
			if p, ok := pins["link:"+fmt.Sprint(lid)]; ok {
				v.Pinned = &p
			}
		} else if p, ok := pins["prog:"+fmt.Sprint(id)]; ok {
			v.Pinned = &p
		}
		res.Programs = append(res.Programs, v)
	}
	res.Attached = &res.Programs[0]
	return res, nil
}

// scanPins finds nettune's pins one level under root: "link:ID" or "prog:ID" → path.
func scanPins(root string) map[string]string {
	out := map[string]string{}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if p, err := readPinDir(dir); err == nil {
			switch p.Kind {
			case "link":
				out[fmt.Sprintf("link:%d", p.LinkID)] = filepath.Join(dir, "link")
			case "prog":
				out[fmt.Sprintf("prog:%d", p.ProgID)] = filepath.Join(dir, "prog")
			}
		}
	}
	return out
}

// ---- attach ---------------------------------------------------------------------------------

type attachResult struct {
	ProgID         uint32   `json:"progId"`
	LinkID         *uint32  `json:"linkId"`
	Tag            string   `json:"tag"`
	Name           string   `json:"name"`
	Mode           string   `json:"mode"`
	Via            string   `json:"via"` // "link" or "netlink"
	Maps           []string `json:"maps"`
	ReusedMaps     []string `json:"reusedMaps"`
	PinDir         string   `json:"pinDir"`
	Updated        bool     `json:"updated"`
	PreviousProgID *uint32  `json:"previousProgId"`
	MountedBpffs   bool     `json:"mountedBpffs"`
	// LinkFallback says why netlink was used instead of a bpf_link, when it was.
	LinkFallback string `json:"linkFallback,omitempty"`
}

func attach(o opts) (_ any, err error) {
	ifindex, err := ifaceIndex(o.dev)
	if err != nil {
		return nil, err
	}
	mounted, err := ensureBpffs()
	if err != nil {
		return nil, err
	}
	// A pin dir this run creates goes again if the attach fails: unpinning what it holds (a
	// link not yet relied on) lets the kernel release it.
	if !exists(o.pinDir) {
		defer func() {
			if err != nil {
				_ = os.RemoveAll(o.pinDir)
			}
		}()
	}
	if err := mkPinDir(o.pinDir); err != nil {
		return nil, err
	}
	st, err := getXdp(ifindex)
	if err != nil {
		return nil, err
	}
	pins, err := readPinDir(o.pinDir)
	if err != nil {
		return nil, err
	}
	action, stale, cerr := decideAttach(st, uint32(ifindex), o.mode, pins, uint32(o.replaceProgID), uint32(o.expectLinkID))
	if cerr != nil {
		return nil, cerr
	}
	if stale { // a leftover of ours that no longer attaches anything
		_ = os.Remove(filepath.Join(o.pinDir, "link"))
		_ = os.Remove(filepath.Join(o.pinDir, "prog"))
	}

	coll, reused, err := loadObject(o, ifindex)
	if err != nil {
		return nil, err
	}
	defer coll.Close()
	prog := coll.Programs[o.prog]
	flags := modeFlags[o.mode]
	res := attachResult{Mode: o.mode, PinDir: o.pinDir, MountedBpffs: mounted, ReusedMaps: reused}
	progPin := filepath.Join(o.pinDir, "prog")
	linkPin := filepath.Join(o.pinDir, "link")

	switch action {
	case actUpdateLink:
		l, err := link.LoadPinnedLink(linkPin, nil)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", linkPin, err)
		}
		defer l.Close()
		// The atomic swap: the link (and its id) stays, only its program changes.
		if err := l.Update(prog); err != nil {
			return nil, errf(codeAttachFailed, "updating link %d: %v", pins.LinkID, err)
		}
		res.Via, res.Updated, res.PreviousProgID = "link", true, &pins.ProgID
		res.LinkID = &pins.LinkID

	case actUpdateProg, actReplaceForeign:
		var old *ebpf.Program
		oldID := pins.ProgID
		if action == actUpdateProg {
			old, err = ebpf.LoadPinnedProgram(progPin, nil)
		} else {
			oldID = uint32(o.replaceProgID)
			old, err = ebpf.NewProgramFromID(ebpf.ProgramID(oldID))
		}
		if err != nil {
			return nil, fmt.Errorf("opening program %d: %w", oldID, err)
		}
		defer old.Close()
		if err := replaceXdp(ifindex, prog.FD(), flags, old.FD(), oldID, o.mode); err != nil {
			return nil, err
		}
		res.Via, res.Updated, res.PreviousProgID = "netlink", true, &oldID
		if err := repin(prog, progPin); err != nil {
			// Put the previous program back rather than leave an unpinned one attached.
			_ = setXdp(ifindex, old.FD(), flags|xdpFlagsReplace, prog.FD())
			return nil, err
		}

	case actCreate:
		l, fallback, err := createAttach(o, ifindex, prog, flags)
		if err != nil {
			return nil, err
		}
		if l != nil {
			defer l.Close()
			info, err := l.Info()
			if err != nil {
				return nil, err
			}
			id := uint32(info.ID)
			res.Via, res.LinkID = "link", &id
			// Maps first, link last: if anything fails before the link is pinned, exiting
			// closes its only fd and the kernel detaches it.
			if err := pinMaps(coll, o.pinDir, reused); err != nil {
				return nil, err
			}
			if err := l.Pin(linkPin); err != nil {
				return nil, fmt.Errorf("pinning the link at %s: %w", linkPin, err)
			}
		} else {
			res.Via, res.LinkFallback = "netlink", fallback
			if err := prog.Pin(progPin); err != nil {
				_ = setXdp(ifindex, -1, flags|xdpFlagsReplace, prog.FD())
				return nil, fmt.Errorf("pinning the program at %s: %w", progPin, err)
			}
		}
	}
	if err := pinMaps(coll, o.pinDir, reused); err != nil {
		return nil, err
	}

	info, err := prog.Info()
	if err != nil {
		return nil, err
	}
	id, _ := info.ID()
	res.ProgID, res.Name, res.Tag = uint32(id), info.Name, info.Tag
	res.Maps = userMaps(coll)
	return res, nil
}

// loadObject loads the object's XDP programs (other program types are dropped) and its maps,
// reusing the pinned maps of the pin dir that the new object declares compatibly.
func loadObject(o opts, ifindex int) (*ebpf.Collection, []string, error) {
	spec, err := ebpf.LoadCollectionSpec(o.obj)
	if err != nil {
		return nil, nil, errf(codeBadObject, "reading %s: %v", o.obj, err)
	}
	ps := spec.Programs[o.prog]
	if ps == nil || ps.Type != ebpf.XDP {
		var xdp []string
		for name, p := range spec.Programs {
			if p.Type == ebpf.XDP {
				xdp = append(xdp, name)
			}
		}
		sort.Strings(xdp)
		return nil, nil, &cliError{Code: codeNoProgram,
			Msg:   fmt.Sprintf("%s has no XDP program %q", o.obj, o.prog),
			Extra: map[string]any{"programs": xdp}}
	}
	for name, p := range spec.Programs {
		if p.Type != ebpf.XDP {
			delete(spec.Programs, name)
		}
	}
	if err := setConstants(spec, o.consts); err != nil {
		return nil, nil, err
	}
	if o.mode == "hw" {
		ps.Ifindex = uint32(ifindex) // offloaded programs are verified for their device
	}

	replacements := map[string]*ebpf.Map{}
	var reused []string
	for name, ms := range spec.Maps {
		if internalMap(name) {
			continue
		}
		m, err := ebpf.LoadPinnedMap(filepath.Join(o.pinDir, "maps", name), nil)
		if err != nil {
			continue
		}
		if ms.Compatible(m) != nil {
			m.Close()
			continue
		}
		replacements[name] = m
		reused = append(reused, name)
	}
	defer func() {
		for _, m := range replacements {
			m.Close()
		}
	}()
	sort.Strings(reused)
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: replacements})
	if err != nil {
		var ve *ebpf.VerifierError
		if o.mode == "hw" && (!errors.As(err, &ve) || len(ve.Log) == 0) {
			return nil, nil, errf(codeModeUnsupported, "%s cannot take an offloaded program: %v", o.dev, err)
		}
		if errors.As(err, &ve) {
			return nil, nil, &cliError{Code: codeVerifier, Msg: fmt.Sprintf("the kernel refused %s: %v", o.prog, err),
				Extra: map[string]any{"log": lastLines(ve.Log, 40)}}
		}
		return nil, nil, errf(codeVerifier, "loading %s: %v", o.obj, err)
	}
	if reused == nil {
		reused = []string{}
	}
	return coll, reused, nil
}

func lastLines(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

// internalMap is a data section (.rodata, .data, .bss, .kconfig): owned by the program, not
// pinned, never reused.
func internalMap(name string) bool { return strings.HasPrefix(name, ".") }

func userMaps(coll *ebpf.Collection) []string {
	names := []string{}
	for name := range coll.Maps {
		if !internalMap(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// pinMaps pins the collection's maps under DIR/maps (replacing pins of maps that were not
// reused) and removes pins of maps the object no longer declares. Idempotent.
func pinMaps(coll *ebpf.Collection, dir string, reused []string) error {
	mapsDir := filepath.Join(dir, "maps")
	if err := os.MkdirAll(mapsDir, 0o700); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, name := range userMaps(coll) {
		keep[name] = true
		m := coll.Maps[name]
		if m.IsPinned() || contains(reused, name) {
			continue
		}
		path := filepath.Join(mapsDir, name)
		_ = os.Remove(path) // an incompatible map of the same name from the previous object
		if err := m.Pin(path); err != nil {
			return fmt.Errorf("pinning map %s: %w", name, err)
		}
	}
	entries, _ := os.ReadDir(mapsDir)
	for _, e := range entries {
		if !keep[e.Name()] {
			_ = os.Remove(filepath.Join(mapsDir, e.Name()))
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// repin pins prog at path, replacing what is there atomically (pin beside, then rename).
func repin(prog *ebpf.Program, path string) error {
	tmp := path + "_new" // no dots: bpffs reserves them
	_ = os.Remove(tmp)
	if err := prog.Pin(tmp); err != nil {
		return fmt.Errorf("pinning the program at %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming %s: %w", tmp, err)
	}
	return nil
}

// replaceXdp swaps the netlink-attached program oldFd (id oldID) for newFd, atomically where
// the kernel has XDP_FLAGS_REPLACE (5.7); older kernels get a check-then-set.
func replaceXdp(ifindex, newFd int, flags uint32, oldFd int, oldID uint32, mode string) error {
	err := setXdp(ifindex, newFd, flags|xdpFlagsReplace, oldFd)
	if errors.Is(err, syscall.EINVAL) && !kernelAtLeast(uname(), 5, 7) {
		st, gerr := getXdp(ifindex)
		if gerr != nil {
			return gerr
		}
		if st.Progs[mode] != oldID {
			return errf(codeForeign, "program %d is no longer the attached one", oldID)
		}
		err = setXdp(ifindex, newFd, flags, -1)
	}
	if err != nil {
		return &cliError{Code: classifyAttach(err, mode), Msg: fmt.Sprintf("replacing program %d: %v", oldID, err)}
	}
	return nil
}

func uname() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// createAttach attaches prog where nothing is: a bpf_link when the kernel has XDP links (5.9),
// else netlink with XDP_FLAGS_UPDATE_IF_NOEXIST. A link the driver refuses is retried through
// netlink only to learn why (the bpf() syscall gives an errno, netlink the driver's message);
// if that retry attaches after all, it is undone and the link's error stands.
func createAttach(o opts, ifindex int, prog *ebpf.Program, flags uint32) (link.Link, string, error) {
	noexist := flags | xdpFlagsUpdateIfNoExist
	fallback := ""
	switch {
	case o.noLink:
		fallback = "--no-link"
	case !kernelAtLeast(uname(), 5, 9):
		fallback = "bpf links for XDP need Linux 5.9, this is " + uname()
	}
	if fallback == "" {
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPAttachFlags(flags)})
		if err == nil {
			return l, "", nil
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			fallback = err.Error()
		} else {
			nerr := setXdp(ifindex, prog.FD(), noexist, -1)
			if nerr == nil {
				_ = setXdp(ifindex, -1, flags|xdpFlagsReplace, prog.FD())
				nerr = err
			}
			return nil, "", &cliError{Code: classifyAttach(nerr, o.mode),
				Msg:   fmt.Sprintf("attaching %s in %s mode on %s: %v", o.prog, o.mode, o.dev, nerr),
				Extra: map[string]any{"mtu": mtuOf(ifindex), "driver": driverName(o.dev)}}
		}
	}
	if o.requireLink {
		return nil, "", errf(codeLinksUnsupported, "bpf links for XDP are unavailable: %s", fallback)
	}
	if err := setXdp(ifindex, prog.FD(), noexist, -1); err != nil {
		return nil, "", &cliError{Code: classifyAttach(err, o.mode),
			Msg:   fmt.Sprintf("attaching %s in %s mode on %s: %v", o.prog, o.mode, o.dev, err),
			Extra: map[string]any{"mtu": mtuOf(ifindex), "driver": driverName(o.dev)}}
	}
	return nil, fallback, nil
}

func mtuOf(ifindex int) uint32 {
	st, _ := getXdp(ifindex)
	return st.MTU
}

// ---- detach ---------------------------------------------------------------------------------

type detachResult struct {
	Detached    bool    `json:"detached"`
	AlreadyGone bool    `json:"alreadyGone"`
	ProgID      *uint32 `json:"progId"`
	LinkID      *uint32 `json:"linkId"`
	PinDir      string  `json:"pinDir"`
}

func detach(o opts) (any, error) {
	ifindex, err := ifaceIndex(o.dev)
	if err != nil {
		return nil, err
	}
	res := detachResult{PinDir: o.pinDir}
	if !exists(o.pinDir) {
		res.AlreadyGone = true
		return res, nil
	}
	st, err := getXdp(ifindex)
	if err != nil {
		return nil, err
	}
	p, err := readPinDir(o.pinDir)
	if err != nil {
		return nil, err
	}
	mode := modeOf(st, p.ProgID)
	ours := p.Kind != "" && mode != "" && (p.Kind == "prog" || p.Ifindex == uint32(ifindex))
	if !ours && (anyAttached(st) || (p.Kind == "link" && p.Ifindex != 0 && p.Ifindex != uint32(ifindex))) {
		id, m := occupant(st, "native")
		if id == 0 {
			id, m = occupant(st, "hw")
		}
		return nil, &cliError{Code: codeNotOurs,
			Msg:   fmt.Sprintf("%s holds %s, but %s has program %d (%s) attached; nothing changed", o.pinDir, describePins(p), o.dev, id, m),
			Extra: map[string]any{"progId": id, "mode": m}}
	}
	if ours {
		switch p.Kind {
		case "link":
			l, err := link.LoadPinnedLink(filepath.Join(o.pinDir, "link"), nil)
			if err != nil {
				return nil, err
			}
			err = l.Detach()
			l.Close()
			if err != nil {
				return nil, fmt.Errorf("detaching link %d: %w", p.LinkID, err)
			}
			res.LinkID = &p.LinkID
		case "prog":
			prog, err := ebpf.LoadPinnedProgram(filepath.Join(o.pinDir, "prog"), nil)
			if err != nil {
				return nil, err
			}
			err = replaceXdp(ifindex, -1, modeFlags[mode], prog.FD(), p.ProgID, mode)
			prog.Close()
			if err != nil {
				return nil, err
			}
		}
		res.Detached, res.ProgID = true, &p.ProgID
	} else {
		res.AlreadyGone = true
	}
	// Unpinning drops the last references: the link, the program and the maps go.
	if err := os.RemoveAll(o.pinDir); err != nil {
		return nil, fmt.Errorf("removing %s: %w", o.pinDir, err)
	}
	return res, nil
}

func describePins(p pinState) string {
	switch p.Kind {
	case "link":
		return fmt.Sprintf("link %d (program %d)", p.LinkID, p.ProgID)
	case "prog":
		return fmt.Sprintf("program %d", p.ProgID)
	}
	return "nothing"
}

// ---- takeover and restore -------------------------------------------------------------------

// saveMeta is what a save dir records about the program it holds.
type saveMeta struct {
	Dev     string `json:"dev"`
	Ifindex int    `json:"ifindex"`
	ProgID  uint32 `json:"progId"`
	Name    string `json:"name"`
	Tag     string `json:"tag"`
	Mode    string `json:"mode"`
	Flags   uint32 `json:"flags"`
}

func readMeta(dir string) (saveMeta, error) {
	var m saveMeta
	text, err := os.Readlink(filepath.Join(dir, "meta"))
	if err != nil {
		return m, errf(codeNoSave, "%s holds no meta: %v", dir, err)
	}
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		return m, errf(codeNoSave, "%s/meta: %v", dir, err)
	}
	return m, nil
}

type takeoverResult struct {
	saveMeta
	SaveDir      string `json:"saveDir"`
	MountedBpffs bool   `json:"mountedBpffs"`
}

func takeover(o opts) (any, error) {
	ifindex, err := ifaceIndex(o.dev)
	if err != nil {
		return nil, err
	}
	mounted, err := ensureBpffs()
	if err != nil {
		return nil, err
	}
	st, err := getXdp(ifindex)
	if err != nil {
		return nil, err
	}
	id, mode := occupant(st, "native")
	if id == 0 {
		id, mode = occupant(st, "hw")
	}
	if id == 0 {
		return nil, errf(codeNothingAttached, "no XDP program is attached to %s", o.dev)
	}
	progPin := filepath.Join(o.save, "prog")
	if exists(progPin) {
		saved, err := pinnedProgID(progPin)
		if err == nil && saved == id {
			m, err := readMeta(o.save)
			if err != nil {
				return nil, err
			}
			return takeoverResult{saveMeta: m, SaveDir: o.save, MountedBpffs: mounted}, nil
		}
		return nil, errf(codeSaveExists, "%s already holds program %d", o.save, saved)
	}
	if lid, ok := xdpLinks(ifindex)[id]; ok {
		return nil, &cliError{Code: codeForeignLink,
			Msg:   fmt.Sprintf("program %d is held by bpf_link %d of another owner; it cannot be replaced or re-attached", id, lid),
			Extra: map[string]any{"progId": id, "linkId": lid}}
	}
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		return nil, fmt.Errorf("opening program %d: %w", id, err)
	}
	defer prog.Close()
	if err := mkPinDir(o.save); err != nil {
		return nil, err
	}
	if err := prog.Pin(progPin); err != nil {
		return nil, fmt.Errorf("pinning program %d at %s: %w", id, progPin, err)
	}
	m := saveMeta{Dev: o.dev, Ifindex: ifindex, ProgID: id, Mode: mode, Flags: modeFlags[mode]}
	m.Name, m.Tag = progNameTag(id)
	text, _ := json.Marshal(m)
	if err := os.Symlink(string(text), filepath.Join(o.save, "meta")); err != nil {
		_ = os.RemoveAll(o.save)
		return nil, fmt.Errorf("writing %s/meta: %w", o.save, err)
	}
	return takeoverResult{saveMeta: m, SaveDir: o.save, MountedBpffs: mounted}, nil
}

type restoreResult struct {
	Restored    bool   `json:"restored"`
	AlreadyGone bool   `json:"alreadyGone"`
	ProgID      uint32 `json:"progId"`
	Mode        string `json:"mode"`
	// Replaced is the program of --over-pin-dir that the restore replaced atomically.
	Replaced *uint32 `json:"replaced"`
}

func restore(o opts) (any, error) {
	ifindex, err := ifaceIndex(o.dev)
	if err != nil {
		return nil, err
	}
	if !exists(o.save) {
		return restoreResult{AlreadyGone: true}, nil
	}
	m, err := readMeta(o.save)
	if err != nil {
		return nil, err
	}
	saved, err := ebpf.LoadPinnedProgram(filepath.Join(o.save, "prog"), nil)
	if err != nil {
		return nil, errf(codeNoSave, "opening %s/prog: %v", o.save, err)
	}
	defer saved.Close()
	res := restoreResult{ProgID: m.ProgID, Mode: m.Mode}
	st, err := getXdp(ifindex)
	if err != nil {
		return nil, err
	}
	flags := modeFlags[m.Mode]
	switch id, _ := occupant(st, m.Mode); {
	case id == m.ProgID: // already back
	case o.overPinDir != "" && id != 0:
		p, err := readPinDir(o.overPinDir)
		if err != nil {
			return nil, err
		}
		if p.ProgID != id {
			return nil, errf(codeForeign, "program %d is attached, and %s does not hold it", id, o.overPinDir)
		}
		if p.Kind == "link" {
			// A link cannot be replaced by a netlink program: detach it, then attach "only if none".
			l, err := link.LoadPinnedLink(filepath.Join(o.overPinDir, "link"), nil)
			if err != nil {
				return nil, err
			}
			err = l.Detach()
			l.Close()
			if err != nil {
				return nil, err
			}
			if err := setXdp(ifindex, saved.FD(), flags|xdpFlagsUpdateIfNoExist, -1); err != nil {
				return nil, &cliError{Code: classifyAttach(err, m.Mode), Msg: fmt.Sprintf("re-attaching program %d: %v", m.ProgID, err)}
			}
		} else {
			ours, err := ebpf.LoadPinnedProgram(filepath.Join(o.overPinDir, "prog"), nil)
			if err != nil {
				return nil, err
			}
			err = replaceXdp(ifindex, saved.FD(), flags, ours.FD(), p.ProgID, m.Mode)
			ours.Close()
			if err != nil {
				return nil, err
			}
		}
		res.Replaced = &p.ProgID
		_ = os.RemoveAll(o.overPinDir)
	case id != 0:
		return nil, &cliError{Code: codeForeign, Msg: fmt.Sprintf("program %d is attached; restore only attaches where none is", id),
			Extra: map[string]any{"progId": id}}
	default:
		if err := setXdp(ifindex, saved.FD(), flags|xdpFlagsUpdateIfNoExist, -1); err != nil {
			return nil, &cliError{Code: classifyAttach(err, m.Mode), Msg: fmt.Sprintf("re-attaching program %d: %v", m.ProgID, err)}
		}
	}
	res.Restored = true
	if err := os.RemoveAll(o.save); err != nil {
		return nil, fmt.Errorf("removing %s: %w", o.save, err)
	}
	return res, nil
}
