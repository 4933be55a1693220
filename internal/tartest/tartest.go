// Package tartest builds tar layers in code for tests: files, dirs,
// symlinks, hardlinks, devices, fifos, whiteouts and xattrs, written
// plain, gzip or zstd compressed. Fixtures made with it live in
// t.TempDir(), never in the repository.
package tartest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Compression of a built layer.
type Compression int

const (
	Plain Compression = iota
	Gzip
	Zstd
)

// String returns a short name, for test names.
func (c Compression) String() string {
	return [...]string{"plain", "gzip", "zstd"}[c]
}

// Epoch is the default mtime of built entries.
var Epoch = time.Unix(1700000000, 0).UTC()

// Layer accumulates tar headers and contents. The zero value is empty
// and ready to use; methods return the Layer so calls chain.
type Layer struct {
	entries []entry
}

type entry struct {
	hdr  tar.Header
	data []byte
	raw  []byte // written as is (Sparse), instead of hdr and data
}

// Opt adjusts a header before it is added.
type Opt func(*tar.Header)

// Mode sets the permission bits.
func Mode(m int64) Opt { return func(h *tar.Header) { h.Mode = m } }

// Owner sets uid and gid.
func Owner(uid, gid int) Opt { return func(h *tar.Header) { h.Uid, h.Gid = uid, gid } }

// ModTime sets the modification time.
func ModTime(t time.Time) Opt { return func(h *tar.Header) { h.ModTime = t } }

// Xattr adds an extended attribute as a PAX SCHILY.xattr record.
func Xattr(key, value string) Opt {
	return func(h *tar.Header) {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+key] = value
		h.Format = tar.FormatPAX
	}
}

// Header gives direct access to the header, for anything else.
func Header(f func(*tar.Header)) Opt { return f }

func (l *Layer) add(h tar.Header, data []byte, opts []Opt) *Layer {
	if h.ModTime.IsZero() {
		h.ModTime = Epoch
	}
	for _, o := range opts {
		o(&h)
	}
	l.entries = append(l.entries, entry{hdr: h, data: data})
	return l
}

// File adds a regular file (mode 0644 unless set).
func (l *Layer) File(name string, data []byte, opts ...Opt) *Layer {
	return l.add(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}, data, opts)
}

// Dir adds a directory (mode 0755 unless set).
func (l *Layer) Dir(name string, opts ...Opt) *Layer {
	return l.add(tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}, nil, opts)
}

// Symlink adds a symlink name -> target.
func (l *Layer) Symlink(name, target string, opts ...Opt) *Layer {
	return l.add(tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}, nil, opts)
}

// Hardlink adds a hardlink name -> target.
func (l *Layer) Hardlink(name, target string, opts ...Opt) *Layer {
	return l.add(tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}, nil, opts)
}

// CharDev adds a character device.
func (l *Layer) CharDev(name string, major, minor int64, opts ...Opt) *Layer {
	return l.add(tar.Header{Typeflag: tar.TypeChar, Name: name, Mode: 0o666, Devmajor: major, Devminor: minor}, nil, opts)
}

// BlockDev adds a block device.
func (l *Layer) BlockDev(name string, major, minor int64, opts ...Opt) *Layer {
	return l.add(tar.Header{Typeflag: tar.TypeBlock, Name: name, Mode: 0o660, Devmajor: major, Devminor: minor}, nil, opts)
}

// Fifo adds a named pipe.
func (l *Layer) Fifo(name string, opts ...Opt) *Layer {
	return l.add(tar.Header{Typeflag: tar.TypeFifo, Name: name, Mode: 0o644}, nil, opts)
}

// Whiteout adds ".wh.BASE" in dir, removing dir/base from lower layers.
func (l *Layer) Whiteout(dir, base string) *Layer {
	return l.File(joinName(dir, ".wh."+base), nil)
}

// Opaque adds ".wh..wh..opq" in dir, hiding all lower children of dir.
func (l *Layer) Opaque(dir string) *Layer {
	return l.File(joinName(dir, ".wh..wh..opq"), nil)
}

// Raw adds a header as given, with data (Size is not adjusted).
func (l *Layer) Raw(h tar.Header, data []byte) *Layer {
	l.entries = append(l.entries, entry{hdr: h, data: data})
	return l
}

func joinName(dir, base string) string {
	if dir == "" || dir == "." {
		return base
	}
	return dir + "/" + base
}

// Region is a run of data in a sparse file.
type Region struct {
	Offset int64
	Data   []byte
}

// Sparse adds a regular file of size bytes that holds the regions' data
// at their offsets and holes elsewhere, written the way GNU tar
// --sparse --posix writes it (GNU sparse format 1.0: GNU.sparse.*
// records in a PAX header, the map as decimal lines at the start of the
// data), which archive/tar reads but cannot write. Regions must be in
// order and inside size. opts may set the mode, owner, mtime and
// xattrs, which go in PAX records (the mode in the header).
func (l *Layer) Sparse(name string, size int64, regions []Region, opts ...Opt) *Layer {
	h := tar.Header{Mode: 0o644, ModTime: Epoch}
	for _, o := range opts {
		o(&h)
	}
	var m bytes.Buffer
	fmt.Fprintf(&m, "%d\n", len(regions))
	for _, r := range regions {
		fmt.Fprintf(&m, "%d\n%d\n", r.Offset, len(r.Data))
	}
	pad := func(b *bytes.Buffer) { b.Write(make([]byte, (512-b.Len()%512)%512)) }
	pad(&m)
	for _, r := range regions {
		m.Write(r.Data)
	}
	var recs bytes.Buffer
	kvs := [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", name}, {"GNU.sparse.realsize", fmt.Sprint(size)},
		{"uid", fmt.Sprint(h.Uid)}, {"gid", fmt.Sprint(h.Gid)}, {"mtime", paxTime(h.ModTime)}}
	for k, v := range h.PAXRecords {
		kvs = append(kvs, [2]string{k, v})
	}
	for _, kv := range kvs {
		rec := " " + kv[0] + "=" + kv[1] + "\n"
		n := len(rec) + 1
		for len(fmt.Sprint(n))+len(rec) != n {
			n++
		}
		fmt.Fprintf(&recs, "%d%s", n, rec)
	}
	header := func(name string, typ byte, size int64) []byte {
		b := make([]byte, 512)
		copy(b, name)
		for _, f := range []struct {
			at, n int
			v     int64
		}{{100, 8, h.Mode}, {108, 8, 0}, {116, 8, 0}, {124, 12, size}, {136, 12, 0}} {
			copy(b[f.at:], fmt.Sprintf("%0*o", f.n-1, f.v))
		}
		b[156] = typ
		copy(b[257:], "ustar\x0000")
		copy(b[148:156], "        ")
		sum := 0
		for _, c := range b {
			sum += int(c)
		}
		copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
		return b
	}
	var raw bytes.Buffer
	raw.Write(header("PaxHeaders.0/sparse", tar.TypeXHeader, int64(recs.Len())))
	raw.Write(recs.Bytes())
	pad(&raw)
	raw.Write(header("GNUSparseFile.0/sparse", tar.TypeReg, int64(m.Len())))
	raw.Write(m.Bytes())
	pad(&raw)
	l.entries = append(l.entries, entry{raw: raw.Bytes()})
	return l
}

// paxTime formats t for a PAX mtime record: a time before the epoch is
// negative as a whole, so -1.25 is 1.25 s before it.
func paxTime(t time.Time) string {
	sec, nsec := t.Unix(), t.Nanosecond()
	if sec < 0 && nsec > 0 {
		return fmt.Sprintf("-%d.%09d", -(sec + 1), 1e9-nsec)
	}
	return fmt.Sprintf("%d.%09d", sec, nsec)
}

// Tar returns the uncompressed tar stream.
func (l *Layer) Tar() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range l.entries {
		if e.raw != nil {
			if err := tw.Flush(); err != nil {
				panic(fmt.Sprintf("tartest: flush: %v", err))
			}
			buf.Write(e.raw)
			continue
		}
		if err := tw.WriteHeader(&e.hdr); err != nil {
			panic(fmt.Sprintf("tartest: write header %q: %v", e.hdr.Name, err))
		}
		if _, err := tw.Write(e.data); err != nil {
			panic(fmt.Sprintf("tartest: write %q: %v", e.hdr.Name, err))
		}
	}
	if err := tw.Close(); err != nil {
		panic(fmt.Sprintf("tartest: close: %v", err))
	}
	return buf.Bytes()
}

// Bytes returns the tar stream compressed with c.
func (l *Layer) Bytes(c Compression) []byte {
	return Compress(l.Tar(), c)
}

// Compress compresses raw with c.
func Compress(raw []byte, c Compression) []byte {
	var buf bytes.Buffer
	switch c {
	case Plain:
		return raw
	case Gzip:
		zw := gzip.NewWriter(&buf)
		zw.Write(raw)
		zw.Close()
	case Zstd:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			panic(err)
		}
		zw.Write(raw)
		zw.Close()
	}
	return buf.Bytes()
}

// RandomData returns n pseudo-random bytes seeded from the test's name
// and label, so every run of a test sees the same data and two labels
// in one test see different data.
func RandomData(t testing.TB, label string, n int) []byte {
	h := fnv.New64a()
	io.WriteString(h, t.Name()+"/"+label)
	r := rand.New(rand.NewPCG(h.Sum64(), 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
