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

// Tar returns the uncompressed tar stream.
func (l *Layer) Tar() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range l.entries {
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
