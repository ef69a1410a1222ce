package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// parseConstants reads --consts: a JSON object of constant name to value, where a value is an
// integer (a JSON number, or a string of digits for 64-bit values), a boolean, or an array of
// those for an array constant.
func parseConstants(text string) (map[string]any, error) {
	if text == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, usagef("--consts must be a JSON object of constant name to value: %v", err)
	}
	return out, nil
}

// setConstants writes each value into the object's read-only globals (`volatile const` in
// .rodata) before the program is loaded, so the verifier sees them as constants. A name that
// is not such a global, or a value that does not fit its type, fails naming the constant:
// nothing is loaded or attached then.
func setConstants(spec *ebpf.CollectionSpec, consts map[string]any) error {
	names := make([]string, 0, len(consts))
	for n := range consts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		v := spec.Variables[name]
		if v == nil || !v.Constant() {
			return &cliError{Code: codeBadConstant,
				Msg:   fmt.Sprintf("the object has no constant %q (a `volatile const` global)", name),
				Extra: map[string]any{"constant": name, "constants": constantNames(spec)}}
		}
		if v.Type == nil {
			return errf(codeBadConstant, "constant %q has no BTF type: compile with -g", name)
		}
		buf, err := encodeValue(v.Type.Type, consts[name])
		if err != nil {
			return &cliError{Code: codeBadConstant, Msg: fmt.Sprintf("constant %q: %v", name, err),
				Extra: map[string]any{"constant": name}}
		}
		if uint32(len(buf)) != v.Size() {
			return errf(codeBadConstant, "constant %q: %d bytes for a %d-byte global", name, len(buf), v.Size())
		}
		copy(v.Value, buf)
	}
	return nil
}

// constantNames lists the object's settable constants, for the error that names a wrong one.
func constantNames(spec *ebpf.CollectionSpec) []string {
	out := []string{}
	for name, v := range spec.Variables {
		if v.Constant() && !strings.HasPrefix(name, ".") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// encodeValue renders value in the machine's byte order as the BTF type t lays it out:
// integers, enums, booleans, and arrays of them (shorter arrays are padded with zeros).
func encodeValue(t btf.Type, value any) ([]byte, error) {
	t = btf.UnderlyingType(t)
	switch tt := t.(type) {
	case *btf.Int:
		return encodeInt(value, int(tt.Size), tt.Encoding&btf.Signed != 0, tt.Encoding&btf.Bool != 0)
	case *btf.Enum:
		return encodeInt(value, int(tt.Size), tt.Signed, false)
	case *btf.Array:
		list, ok := value.([]any)
		if !ok {
			return nil, fmt.Errorf("is an array of %d; give a list", tt.Nelems)
		}
		if uint32(len(list)) > tt.Nelems {
			return nil, fmt.Errorf("has room for %d values, got %d", tt.Nelems, len(list))
		}
		size, err := btf.Sizeof(tt.Type)
		if err != nil {
			return nil, err
		}
		var out bytes.Buffer
		for i, item := range list {
			b, err := encodeValue(tt.Type, item)
			if err != nil {
				return nil, fmt.Errorf("[%d] %w", i, err)
			}
			out.Write(b)
		}
		out.Write(make([]byte, int(tt.Nelems-uint32(len(list)))*size))
		return out.Bytes(), nil
	}
	return nil, fmt.Errorf("has type %v; nettune sets integers, booleans, enums and arrays of them", t)
}

func encodeInt(value any, size int, signed, isBool bool) ([]byte, error) {
	var n big.Int
	switch v := value.(type) {
	case bool:
		if v {
			n.SetInt64(1)
		}
	case json.Number:
		if _, ok := n.SetString(v.String(), 10); !ok {
			return nil, fmt.Errorf("%s is not a whole number", v)
		}
	case string:
		if _, ok := n.SetString(v, 10); !ok {
			return nil, fmt.Errorf("%q is not a whole number", v)
		}
	default:
		return nil, fmt.Errorf("must be a whole number or a boolean, got %v", value)
	}
	if isBool && n.Cmp(big.NewInt(1)) > 0 {
		return nil, fmt.Errorf("is a bool: 0 or 1 (true or false), got %s", n.String())
	}
	bits := uint(size * 8)
	lo, hi := new(big.Int), new(big.Int).Lsh(big.NewInt(1), bits)
	if signed {
		lo.Neg(new(big.Int).Lsh(big.NewInt(1), bits-1))
		hi.Lsh(big.NewInt(1), bits-1)
	}
	if n.Cmp(lo) < 0 || n.Cmp(hi) >= 0 {
		kind := "u"
		if signed {
			kind = "s"
		}
		return nil, fmt.Errorf("%s does not fit in a %s%d (%s to %s)", n.String(), kind, bits, lo.String(),
			new(big.Int).Sub(hi, big.NewInt(1)).String())
	}
	u := new(big.Int).Set(&n)
	if u.Sign() < 0 {
		u.Add(u, new(big.Int).Lsh(big.NewInt(1), bits))
	}
	b8 := make([]byte, 8)
	binary.LittleEndian.PutUint64(b8, u.Uint64())
	out := make([]byte, size)
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		copy(out, b8[:size])
	} else {
		for i := 0; i < size; i++ {
			out[size-1-i] = b8[i]
		}
	}
	return out, nil
}

// counters reads a pinned array map of u64 counters (per-CPU values summed), as the shipped
// programs keep them.
func counters(o opts) (any, error) {
	path := mapPinPath(o.pinDir, o.mapName)
	m, err := ebpf.LoadPinnedMap(path, nil)
	if err != nil {
		return nil, errf(codeNoMap, "no map pinned at %s: %v", path, err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		return nil, err
	}
	if (info.Type != ebpf.Array && info.Type != ebpf.PerCPUArray) || info.KeySize != 4 || info.ValueSize != 8 {
		return nil, errf(codeNoMap, "%s is a %v map of %d-byte keys and %d-byte values, not an array of u64 counters",
			path, info.Type, info.KeySize, info.ValueSize)
	}
	values := make([]uint64, info.MaxEntries)
	for i := uint32(0); i < info.MaxEntries; i++ {
		if info.Type == ebpf.PerCPUArray {
			var per []uint64
			if err := m.Lookup(i, &per); err != nil {
				return nil, err
			}
			for _, v := range per {
				values[i] += v
			}
		} else if err := m.Lookup(i, &values[i]); err != nil {
			return nil, err
		}
	}
	return map[string]any{"map": o.mapName, "values": values}, nil
}
