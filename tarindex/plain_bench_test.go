package tarindex

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkReadPlain measures what serving plain-tar layers costs,
// through an *os.File as in a mount (the blob stays in the page cache):
// random 4 KiB reads into 64 MiB of small and large files, with a warm
// Reader (its chunk cache holds the whole layer) and a cold one (a new
// Reader, nothing cached, per read), and 128 KiB sequential reads of
// whole files (what the kernel sends for cat). It is the before/after
// measure of the per-chunk CRC-32C check of plain tar (docs/security.md).
func BenchmarkReadPlain(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for i := 0; raw.Len() < 64<<20; i++ {
		size := r.Intn(64 << 10)
		if i%16 == 0 {
			size = 1<<20 + r.Intn(4<<20)
		}
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%d/f%d", i%31, i), Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg})
		tw.Write(content(r, size))
	}
	tw.Close()
	p := filepath.Join(b.TempDir(), "blob")
	if err := os.WriteFile(p, raw.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ix := mustBuild(b, raw.Bytes(), Uncompressed, BuildOptions{})
	var big []*Entry
	for i := range ix.Entries {
		if ix.Entries[i].Size >= 4096 {
			big = append(big, &ix.Entries[i])
		}
	}
	read4K := func(b *testing.B, rd func() *Reader) {
		r := rand.New(rand.NewSource(2))
		buf := make([]byte, 4096)
		b.SetBytes(4096)
		for range b.N {
			e := big[r.Intn(len(big))]
			if _, err := rd().ReadAt(e, buf, r.Int63n(e.Size-4095)); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
	}
	b.Run("random-4K-warm", func(b *testing.B) {
		warm := NewReader(ix, f, ReaderOptions{CacheBytes: 128 << 20})
		read4K(b, func() *Reader { return warm })
	})
	b.Run("random-4K-cold", func(b *testing.B) {
		read4K(b, func() *Reader { return NewReader(ix, f, ReaderOptions{}) })
	})
	b.Run("sequential-128K", func(b *testing.B) {
		rd := NewReader(ix, f, ReaderOptions{})
		buf := make([]byte, 128<<10)
		b.SetBytes(int64(len(buf)))
		i, off := 0, int64(0)
		for range b.N {
			e := &ix.Entries[i%len(ix.Entries)]
			n, err := rd.ReadAt(e, buf, off)
			if err != nil && err != io.EOF {
				b.Fatal(err)
			}
			off += int64(n)
			if off >= e.Size {
				i, off = i+1, 0
			}
		}
	})
}
