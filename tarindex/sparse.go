package tarindex

import (
	"archive/tar"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// archive/tar reads GNU sparse files (old GNU type 'S', PAX 0.0, 0.1 and
// 1.0) and expands their holes, but does not expose the sparse map. We
// need the map to serve holes without reading, so we read it ourselves:
// for PAX 0.x from the PAX records archive/tar returns, for PAX 1.0 and
// old GNU from the raw header bytes captured while tar.Reader.Next ran.
// archive/tar has already validated the same bytes, so we follow its
// rules for what counts as sparse.

// sparseMap returns the data regions of a sparse entry and whether it is
// sparse at all.
func sparseMap(hdr *tar.Header, raw []byte) ([]SparseRegion, bool, error) {
	var regs []SparseRegion
	var err error
	switch {
	case hdr.Typeflag == tar.TypeGNUSparse:
		regs, err = oldGNUSparse(raw)
	default:
		major, minor := hdr.PAXRecords["GNU.sparse.major"], hdr.PAXRecords["GNU.sparse.minor"]
		switch {
		case major == "1" && minor == "0":
			regs, err = pax1Sparse(raw)
		case major == "0" && (minor == "0" || minor == "1"), major == "" && minor == "" && hdr.PAXRecords["GNU.sparse.map"] != "":
			regs, err = pax0Sparse(hdr.PAXRecords["GNU.sparse.map"])
		default:
			return nil, false, nil // not sparse, or a version archive/tar treats as plain data
		}
	}
	if err != nil {
		return nil, true, fmt.Errorf("read sparse map: %w", err)
	}
	// Drop empty regions (GNU tar ends maps with one at the file size)
	// and check order, like archive/tar's validateSparseEntries.
	out := regs[:0]
	var end int64
	for _, r := range regs {
		if r.Offset < end || r.Length < 0 || r.Offset+r.Length < r.Offset || r.Offset+r.Length > hdr.Size {
			return nil, true, fmt.Errorf("read sparse map: region %d+%d out of order or past size %d: %w", r.Offset, r.Length, hdr.Size, ErrMalformed)
		}
		end = r.Offset + r.Length
		if r.Length > 0 {
			out = append(out, r)
		}
	}
	if out == nil {
		out = []SparseRegion{}
	}
	return out, true, nil
}

func pax0Sparse(m string) ([]SparseRegion, error) {
	if m == "" {
		return nil, nil
	}
	f := strings.Split(m, ",")
	if len(f)%2 != 0 {
		return nil, fmt.Errorf("odd number of GNU.sparse.map fields: %w", ErrMalformed)
	}
	regs := make([]SparseRegion, 0, len(f)/2)
	for i := 0; i < len(f); i += 2 {
		off, err1 := strconv.ParseInt(f[i], 10, 64)
		n, err2 := strconv.ParseInt(f[i+1], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("GNU.sparse.map field not a number: %w", ErrMalformed)
		}
		regs = append(regs, SparseRegion{Offset: off, Length: n})
	}
	return regs, nil
}

// headerBlocks walks the captured header blocks of one entry (PAX,
// GNU long-name and long-link records, then the entry's own header) and
// returns the entry's header and everything after it.
func headerBlocks(raw []byte) (hdr, rest []byte, err error) {
	for len(raw) >= 512 {
		b := raw[:512]
		if !validChecksum(b) {
			return nil, nil, fmt.Errorf("locate header: bad checksum in captured header: %w", ErrMalformed)
		}
		switch b[156] {
		case tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
			size, err := parseNumeric(b[124:136])
			if err != nil || size < 0 || size > int64(len(raw)) {
				return nil, nil, fmt.Errorf("locate header: bad size: %w", ErrMalformed)
			}
			skip := 512 + align512(size)
			if skip > int64(len(raw)) {
				return nil, nil, fmt.Errorf("locate header: truncated capture: %w", ErrMalformed)
			}
			raw = raw[skip:]
		default:
			return b, raw[512:], nil
		}
	}
	return nil, nil, fmt.Errorf("locate header: no header captured: %w", ErrMalformed)
}

func validChecksum(b []byte) bool {
	want, err := parseNumeric(b[148:156])
	if err != nil {
		return false
	}
	var sum int64
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	return sum == want
}

// oldGNUSparse reads the map of an old GNU 'S' header: four entries in
// the header, then 21 per extension block while isextended is set.
func oldGNUSparse(raw []byte) ([]SparseRegion, error) {
	hdr, rest, err := headerBlocks(raw)
	if err != nil {
		return nil, err
	}
	var regs []SparseRegion
	blk, entries, ext := hdr[386:482], 4, hdr[482]
	for {
		for i := 0; i < entries; i++ {
			e := blk[i*24 : i*24+24]
			if e[0] == 0 {
				break
			}
			off, err1 := parseNumeric(e[:12])
			n, err2 := parseNumeric(e[12:])
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("bad old GNU sparse entry: %w", ErrMalformed)
			}
			regs = append(regs, SparseRegion{Offset: off, Length: n})
		}
		if ext == 0 {
			return regs, nil
		}
		if len(rest) < 512 {
			return nil, fmt.Errorf("missing old GNU sparse extension block: %w", ErrMalformed)
		}
		blk, entries, ext = rest[:504], 21, rest[504]
		rest = rest[512:]
	}
}

// pax1Sparse reads a PAX 1.0 map: newline-terminated decimal numbers
// (count, then offset and length pairs) at the start of the data,
// padded to a block.
func pax1Sparse(raw []byte) ([]SparseRegion, error) {
	_, m, err := headerBlocks(raw)
	if err != nil {
		return nil, err
	}
	next := func() (int64, error) {
		i := bytes.IndexByte(m, '\n')
		if i < 0 {
			return 0, fmt.Errorf("truncated PAX 1.0 sparse map: %w", ErrMalformed)
		}
		v, err := strconv.ParseInt(string(m[:i]), 10, 64)
		m = m[i+1:]
		if err != nil || v < 0 {
			return 0, fmt.Errorf("bad number in PAX 1.0 sparse map: %w", ErrMalformed)
		}
		return v, nil
	}
	n, err := next()
	if err != nil {
		return nil, err
	}
	if n > int64(len(m)) {
		return nil, fmt.Errorf("PAX 1.0 sparse map too long: %w", ErrMalformed)
	}
	regs := make([]SparseRegion, 0, n)
	for range n {
		off, err := next()
		if err != nil {
			return nil, err
		}
		l, err := next()
		if err != nil {
			return nil, err
		}
		regs = append(regs, SparseRegion{Offset: off, Length: l})
	}
	return regs, nil
}

// parseNumeric parses a tar numeric field: octal text, or base-256 when
// the high bit of the first byte is set.
func parseNumeric(b []byte) (int64, error) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		if len(b) > 9 {
			for _, c := range b[1 : len(b)-8] {
				if c != 0 && c != 0xff {
					return 0, fmt.Errorf("base-256 number overflows: %w", ErrMalformed)
				}
			}
		}
		var v int64
		for i, c := range b {
			if i == 0 {
				c &= 0x7f
				if b[0]&0x40 != 0 {
					c |= 0x80 // negative
				}
			}
			v = v<<8 | int64(c)
		}
		return v, nil
	}
	s := strings.Trim(string(b), " \x00")
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 8, 64)
	if err != nil {
		return 0, fmt.Errorf("bad octal number %q: %w", s, ErrMalformed)
	}
	return v, nil
}
