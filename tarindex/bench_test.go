package tarindex

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	stdgzip "compress/gzip"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
)

// benchMiB is the uncompressed size of the benchmark layer:
// OCIFS_BENCH_MIB, default 256. The layer is cached in the temp dir
// across runs, since compressing it takes longer than indexing it.
func benchLayer(b *testing.B) (blob []byte, rawSize int64) {
	b.Helper()
	mib := 256
	if v, err := strconv.Atoi(os.Getenv("OCIFS_BENCH_MIB")); err == nil && v > 0 {
		mib = v
	}
	p := filepath.Join(os.TempDir(), fmt.Sprintf("ocifs-bench-layer-%dMiB.tar.gz", mib))
	if blob, err := os.ReadFile(p); err == nil {
		return blob, int64(mib) << 20
	}
	r := rand.New(rand.NewSource(int64(mib)))
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		var n int64
		for i := 0; n < int64(mib)<<20-(8<<20); i++ {
			size := r.Intn(64 << 10)
			if r.Intn(16) == 0 {
				size = r.Intn(8 << 20)
			}
			data := content(r, size)
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("usr/lib/d%d/f%d", i%97, i), Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg})
			tw.Write(data)
			n += int64(size) + 512
		}
		tw.Close()
		pw.Close()
	}()
	var out bytes.Buffer
	zw := stdgzip.NewWriter(&out) // what docker and most builders use
	io.Copy(zw, pr)
	zw.Close()
	os.WriteFile(p, out.Bytes(), 0o644)
	return out.Bytes(), int64(mib) << 20
}

// BenchmarkBuildGzip compares Build with plain decompression of the same
// blob, measured in the same run: the baselines are what any indexer
// must at least pay.
func BenchmarkBuildGzip(b *testing.B) {
	blob, _ := benchLayer(b)
	desc := descFor(blob, Gzip)
	b.Run("baseline=stdlib-gunzip", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		for range b.N {
			zr, _ := stdgzip.NewReader(bytes.NewReader(blob))
			io.Copy(io.Discard, zr)
		}
	})
	b.Run("baseline=klauspost-gunzip", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		for range b.N {
			zr, _ := kgzip.NewReader(bytes.NewReader(blob))
			io.Copy(io.Discard, zr)
		}
	})
	b.Run("build", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		var ix *Index
		for range b.N {
			var err error
			if ix, err = Build(context.Background(), bytes.NewReader(blob), desc, BuildOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		enc, _ := ix.MarshalBinary()
		b.ReportMetric(float64(len(enc)), "index-bytes")
		b.ReportMetric(100*float64(len(enc)-128*len(ix.Entries))/float64(len(blob)), "%blob-beyond-128B/entry")
		b.ReportMetric(float64(len(ix.Entries)), "entries")
	})
}

// BenchmarkColdRead4K reads 4 KiB at a random offset of the layer with a
// fresh Reader each time (nothing cached), for several spans, and
// reports the median.
func BenchmarkColdRead4K(b *testing.B) {
	blob, _ := benchLayer(b)
	desc := descFor(blob, Gzip)
	for _, span := range []int64{1 << 20, 2 << 20, 3 << 20, 4 << 20, 8 << 20} {
		ix, err := Build(context.Background(), bytes.NewReader(blob), desc, BuildOptions{Span: span})
		if err != nil {
			b.Fatal(err)
		}
		enc, _ := ix.MarshalBinary()
		var big []int
		for i, e := range ix.Entries {
			if e.Size >= 4096 {
				big = append(big, i)
			}
		}
		b.Run(fmt.Sprintf("span=%dMiB", span>>20), func(b *testing.B) {
			r := rand.New(rand.NewSource(1))
			lat := make([]time.Duration, 0, b.N)
			buf := make([]byte, 4096)
			for range b.N {
				e := &ix.Entries[big[r.Intn(len(big))]]
				off := r.Int63n(e.Size - 4095)
				t0 := time.Now()
				rd := NewReader(ix, bytes.NewReader(blob), ReaderOptions{})
				if _, err := rd.ReadAt(e, buf, off); err != nil && err != io.EOF {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				rd.Close()
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-median")
			b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "ms-p90")
			b.ReportMetric(100*float64(len(enc))/float64(len(blob)), "%index/blob")
		})
	}
}

// BenchmarkDecode100k decodes an index of 100,000 entries (about 1 GiB
// of tar) with Decode and with DecodeAccess, which skips the entries. The
// plain index holds entries and chunk checksums only; the gzip one also
// has what Build stores for such a layer at the default span: an access
// point and a 16 KiB compressed window per 3 MiB (about 5 MB in all),
// which DecodeAccess still checksums but does not copy.
func BenchmarkDecode100k(b *testing.B) {
	for _, comp := range []Compression{Uncompressed, Gzip} {
		enc := index100k(b, comp)
		for _, dec := range []struct {
			name string
			f    func([]byte) (*Index, error)
		}{{"Decode", Decode}, {"DecodeAccess", DecodeAccess}} {
			b.Run(comp.String()+"/"+dec.name, func(b *testing.B) {
				b.ReportMetric(float64(len(enc))/100000, "bytes/entry")
				b.SetBytes(int64(len(enc)))
				b.ReportAllocs()
				for range b.N {
					if _, err := dec.f(enc); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// index100k encodes a synthetic index of 100,000 entries; for gzip it
// adds access points with random (incompressible) windows.
func index100k(b *testing.B, comp Compression) []byte {
	b.Helper()
	r := rand.New(rand.NewSource(1))
	ix := &Index{MediaType: mediaTypes[comp], compression: comp, Digest: digest.Digest(fmt.Sprintf("sha256:%064x", 1)), DiffID: digest.Digest(fmt.Sprintf("sha256:%064x", 1)), span: DefaultSpan}
	var off int64
	for i := range 100000 {
		size := int64(r.Intn(20000))
		e := Entry{Name: fmt.Sprintf("usr/share/d%d/sub%d/file-%d.txt", i/1000, i/50, i), Type: tar.TypeReg, Mode: 0o644, Mtime: 1700000000, Size: size, Offset: off + 512}
		if i%20 == 0 {
			e.Type, e.Size, e.Linkname = tar.TypeSymlink, 0, "../lib/target"
		}
		off = align512(e.Offset + e.Size)
		ix.Entries = append(ix.Entries, e)
	}
	ix.TarSize, ix.BlobSize = off+1024, off+1024
	ix.chunkSize = plainChunkSize
	if comp == Gzip {
		ix.chunkSize, ix.BlobSize = chunkSize, ix.TarSize/2
		for u := int64(0); u < ix.TarSize; u += DefaultSpan {
			p := point{U: u, C: u / 2, Kind: pointInflate, winOff: len(ix.windows), winLen: 16 << 10}
			if u == 0 {
				p = point{Kind: pointStart}
			}
			ix.points = append(ix.points, p)
			ix.windows = append(ix.windows, content(r, p.winLen)...)
		}
	}
	ix.chunkCRC = make([]uint32, ix.computeChunkBase())
	enc, err := ix.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	return enc
}
