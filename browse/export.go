package browse

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ocifs/ocifs/overlay"
	"github.com/ocifs/ocifs/rootfs"
	"github.com/ocifs/ocifs/tarindex"
)

// exportBufferSize is the write buffer of Export: tar headers are 512
// bytes each, and a large buffer turns them into few large writes.
const exportBufferSize = 1 << 20

// Export writes the merged tree of r to w as one PAX tar stream, the
// way an unpacker would have left it on disk (like crane export or
// docker export, plus the root directory as "./").
//
// Entries come in tree walk order: depth first, children sorted by
// name, so every directory comes before what it holds. A node with
// several names (hardlinks) is written in full at its first name and as
// a hardlink entry (TypeLink) to that name at the others. Xattrs are
// SCHILY.xattr PAX records, mtimes keep their nanoseconds, owners are
// numeric (no user or group names). Sparse files stay sparse: they are
// written in GNU's sparse format 1.0 (see writeSparse), so the archive
// holds only their data, however large their holes. Nothing touches the
// disk: contents are read through RootFS.ReadAt, front to back, a MiB
// at a time.
func Export(ctx context.Context, w io.Writer, r *rootfs.RootFS) error {
	bw := bufio.NewWriterSize(w, exportBufferSize)
	tw := tar.NewWriter(bw)
	buf := make([]byte, copyBufferSize)
	first := make(map[uint64]string) // node ID -> first name, for nodes with Nlink > 1
	err := r.Tree.Walk(func(p string, n *overlay.Node) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr := header(p, n)
		if n.Nlink > 1 && !n.IsDir() {
			if target, ok := first[n.ID]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, target, 0
				hdr.PAXRecords = nil
			} else {
				first[n.ID] = hdr.Name
			}
		}
		if hdr.Typeflag == tar.TypeReg && n.Entry.Sparse != nil {
			if err := writeSparse(bw, tw, r, n, hdr, buf); err != nil {
				return fmt.Errorf("write %q: %w", displayPath(p), err)
			}
			return nil
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write header of %q: %w", displayPath(p), err)
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
			if err := copyContents(tw, r, n, buf); err != nil {
				return fmt.Errorf("write %q: %w", displayPath(p), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("export %s: %w", r.Image.Ref, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export %s: %w", r.Image.Ref, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export %s: %w", r.Image.Ref, err)
	}
	return nil
}

// header is the tar header of the name p of n.
func header(p string, n *overlay.Node) *tar.Header {
	e := n.Entry
	hdr := &tar.Header{
		Typeflag: e.Type,
		Name:     p,
		Linkname: e.Linkname,
		Mode:     int64(e.Mode),
		Uid:      e.UID,
		Gid:      e.GID,
		Size:     e.Size,
		ModTime:  e.ModTime(),
		Devmajor: int64(e.Devmajor),
		Devminor: int64(e.Devminor),
		// PAX keeps what ustar cannot: nanosecond mtimes, long
		// names, large ids and sizes, xattrs.
		Format: tar.FormatPAX,
	}
	if e.Type == tar.TypeDir {
		hdr.Name += "/"
	}
	if e.Type != tar.TypeReg {
		hdr.Size = 0
	}
	if len(e.Xattrs) > 0 {
		hdr.PAXRecords = make(map[string]string, len(e.Xattrs))
		for _, x := range e.Xattrs {
			hdr.PAXRecords["SCHILY.xattr."+x.Key] = x.Value
		}
	}
	return hdr
}

// writeSparse writes n, a sparse regular file named hdr.Name, in the
// GNU sparse format 1.0 in PAX: what GNU tar --sparse --posix writes,
// and what GNU tar, bsdtar and archive/tar read back (GNU tar's manual,
// "Storing Sparse Files", format 1.0). The entry is
//
//	a PAX 'x' header with GNU.sparse.major=1, GNU.sparse.minor=0,
//	GNU.sparse.name (the real name), GNU.sparse.realsize (the size with
//	holes), and the records header() made (xattrs, mtime, big ids);
//	a ustar header of a regular file "dir/GNUSparseFile.0/base" whose
//	data is the map, then the regions' data one after another;
//	the map: decimal lines "count", then "offset" and "length" per
//	region, padded with zeros to 512 bytes.
//
// A reader without sparse support extracts the map and data under the
// GNUSparseFile name rather than a wrong file. archive/tar reads this
// format but cannot write it (its Writer drops GNU.sparse records), so
// both header blocks are written here, after tw has padded the previous
// entry; tw then goes on with the next entry as if nothing came between.
// Holes are never read nor written: export costs the data only.
func writeSparse(bw *bufio.Writer, tw *tar.Writer, r *rootfs.RootFS, n *overlay.Node, hdr *tar.Header, buf []byte) error {
	if err := tw.Flush(); err != nil {
		return err
	}
	e := n.Entry
	regs := blockRegions(e.Sparse, e.Size)
	var m strings.Builder
	fmt.Fprintf(&m, "%d\n", len(regs))
	var data int64
	for _, s := range regs {
		fmt.Fprintf(&m, "%d\n%d\n", s.Offset, s.Length)
		data += s.Length
	}
	mapBytes := make([]byte, align512(int64(m.Len())))
	copy(mapBytes, m.String())
	stored := int64(len(mapBytes)) + data

	dir, base := path.Split(strings.TrimSuffix(hdr.Name, "/"))
	fake := dir + "GNUSparseFile.0/" + base
	recs := map[string]string{
		"GNU.sparse.major":    "1",
		"GNU.sparse.minor":    "0",
		"GNU.sparse.name":     hdr.Name,
		"GNU.sparse.realsize": strconv.FormatInt(e.Size, 10),
		"path":                fake,
		"mtime":               paxTime(hdr.ModTime),
	}
	for k, v := range hdr.PAXRecords {
		recs[k] = v
	}
	// Numbers the ustar fields cannot hold go in records; the fields
	// then hold zero (POSIX pax: a record overrides its field).
	fits := func(v int64, field int) bool { return v >= 0 && v < 1<<(3*(field-1)) }
	num := func(key string, v int64, field int) int64 {
		if !fits(v, field) {
			recs[key] = strconv.FormatInt(v, 10)
			return 0
		}
		return v
	}
	ustar := ustarFields{
		name: fake,
		mode: hdr.Mode,
		uid:  num("uid", int64(hdr.Uid), 8),
		gid:  num("gid", int64(hdr.Gid), 8),
		size: num("size", stored, 12),
		typ:  tar.TypeReg,
	}
	if sec := hdr.ModTime.Unix(); fits(sec, 12) {
		ustar.mtime = sec // else 0; the mtime record holds it
	}
	var pax strings.Builder
	for _, k := range slices.Sorted(maps.Keys(recs)) {
		pax.WriteString(paxRecord(k, recs[k]))
	}
	paxHdr := ustarFields{name: dir + "PaxHeaders.0/" + base, mode: 0o644, size: int64(pax.Len()), mtime: ustar.mtime, typ: tar.TypeXHeader}

	var blocks []byte
	blocks = append(blocks, paxHdr.block()...)
	blocks = append(blocks, pax.String()...)
	blocks = append(blocks, make([]byte, align512(int64(pax.Len()))-int64(pax.Len()))...)
	blocks = append(blocks, ustar.block()...)
	blocks = append(blocks, mapBytes...)
	if _, err := bw.Write(blocks); err != nil {
		return err
	}
	for _, s := range regs {
		for off, end := s.Offset, s.Offset+s.Length; off < end; {
			k, err := r.ReadAt(n, buf[:min(int64(len(buf)), end-off)], off)
			if k > 0 {
				if _, werr := bw.Write(buf[:k]); werr != nil {
					return werr
				}
				off += int64(k)
			}
			if err == io.EOF && off < end {
				err = io.ErrUnexpectedEOF
			}
			if err != nil && err != io.EOF {
				return err
			}
			if k == 0 && err == nil {
				return fmt.Errorf("read node %d at offset %d: %w", n.ID, off, io.ErrNoProgress)
			}
		}
	}
	_, err := bw.Write(make([]byte, align512(stored)-stored))
	return err
}

// blockRegions returns the map writeSparse stores for a file of size
// bytes with the data regions regs.
//
// GNU tar reads each region's data in whole 512-byte blocks and drops
// the rest of the last block (sparse.c, sparse_extract_region), as it
// writes them padded; archive/tar, and tarindex after it, read the
// regions one after another with no padding. The two agree when every
// region but the last is a whole number of blocks long, which GNU tar's
// own archives are (it finds holes in blocks). So each region but the
// last is extended into the hole after it to a block boundary, merged
// with the next region where they meet: at most 511 bytes of zeros per
// region, read as holes, never more than the file.
//
// GNU tar also ends every map with a region at the real size, empty if
// the file ends in a hole: extracting that region is what makes it
// truncate the file to its full size, so the map ends with one too.
func blockRegions(regs []tarindex.SparseRegion, size int64) []tarindex.SparseRegion {
	out := make([]tarindex.SparseRegion, 0, len(regs)+1)
	for _, s := range regs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			end := min(last.Offset+align512(last.Length), size)
			if end >= s.Offset {
				// The padded region reaches this one: one region.
				last.Length = max(end, s.Offset+s.Length) - last.Offset
				continue
			}
			last.Length = end - last.Offset
		}
		out = append(out, s)
	}
	if n := len(out); n == 0 || out[n-1].Offset+out[n-1].Length < size {
		out = append(out, tarindex.SparseRegion{Offset: size})
	}
	return out
}

// ustarFields are the fields of a ustar header block (POSIX pax,
// "ustar Interchange Format") that writeSparse sets; the rest are
// empty. Numbers must fit their octal fields.
type ustarFields struct {
	name                        string
	mode, uid, gid, size, mtime int64
	typ                         byte
}

// block returns the 512-byte header. A name longer than the 100-byte
// field is cut: writeSparse puts the full name in a PAX record.
func (f ustarFields) block() []byte {
	b := make([]byte, 512)
	copy(b[0:100], f.name)
	octal := func(field []byte, v int64) {
		s := strconv.FormatInt(v, 8)
		copy(field, strings.Repeat("0", len(field)-1-len(s))+s) // then a NUL
	}
	octal(b[100:108], f.mode)
	octal(b[108:116], f.uid)
	octal(b[116:124], f.gid)
	octal(b[124:136], f.size)
	octal(b[136:148], f.mtime)
	b[156] = f.typ
	copy(b[257:265], "ustar\x0000")
	// The checksum is the sum of the header's bytes with its own field
	// taken as spaces, in six octal digits, a NUL and a space.
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// paxRecord returns the PAX extended header record "len key=value\n",
// where len counts the whole record, its own digits included.
func paxRecord(k, v string) string {
	body := " " + k + "=" + v + "\n"
	n := len(body)
	for len(strconv.Itoa(n))+len(body) != n {
		n = len(strconv.Itoa(n)) + len(body)
	}
	return strconv.Itoa(n) + body
}

// paxTime formats t as a PAX time: seconds since the epoch with the
// nanoseconds as a decimal fraction, trailing zeros dropped. A time
// before the epoch is negative as a whole: -1.25 is 1.25 s before it.
func paxTime(t time.Time) string {
	sec, nsec := t.Unix(), int64(t.Nanosecond())
	sign := ""
	if sec < 0 && nsec > 0 {
		sign, sec, nsec = "-", -sec-1, 1e9-nsec
	} else if sec < 0 {
		sign, sec = "-", -sec
	}
	s := sign + strconv.FormatInt(sec, 10)
	if nsec != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%09d", nsec), "0")
	}
	return s
}

// align512 rounds n up to a whole number of tar blocks.
func align512(n int64) int64 { return (n + 511) &^ 511 }
