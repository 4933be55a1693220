package browse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/ocifs/ocifs/internal/testenv"
	"github.com/ocifs/ocifs/tarindex"
)

// boundedWriter keeps what is written up to max bytes, then fails, so
// that an export that writes holes in full stops instead of filling
// the disk.
type boundedWriter struct {
	bytes.Buffer
	max int
}

var errTooMuch = errors.New("more bytes than the bound")

func (w *boundedWriter) Write(p []byte) (int, error) {
	if w.Len()+len(p) > w.max {
		return 0, fmt.Errorf("%d bytes written, then %d more: %w", w.Len(), len(p), errTooMuch)
	}
	return w.Buffer.Write(p)
}

// TestExportHostileSparse: a layer of a few KiB whose sparse map
// declares a 68 GB file. Export's output is bounded by the data, and
// ocifs's own indexer reads the exported entry back with the same map
// and the same bytes.
func TestExportHostileSparse(t *testing.T) {
	const size = 68_000_000_000
	regs := []tartest.Region{
		{Offset: 0, Data: tartest.RandomData(t, "head", 1000)},
		{Offset: 34_000_000_000, Data: tartest.RandomData(t, "middle", 3000)},
		{Offset: size - 100, Data: tartest.RandomData(t, "tail", 100)},
	}
	layer := (&tartest.Layer{}).Sparse("big", size, regs).File("after", []byte("after the sparse file"))
	for _, c := range []tartest.Compression{tartest.Plain, tartest.Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			r := openLayers(t, c, layer)
			w := &boundedWriter{max: 64 << 10}
			if err := Export(context.Background(), w, r); err != nil {
				t.Fatalf("Export = %v, want at most %d bytes", err, w.max)
			}
			out := w.Bytes()
			ix, err := tarindex.Build(context.Background(), bytes.NewReader(out),
				ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(out), Size: int64(len(out))}, tarindex.BuildOptions{})
			if err != nil {
				t.Fatalf("index the export: %v", err)
			}
			var big *tarindex.Entry
			for i := range ix.Entries {
				if ix.Entries[i].Name == "big" {
					big = &ix.Entries[i]
				}
			}
			if big == nil {
				t.Fatalf("no entry big in the export: %+v", ix.Entries)
			}
			if big.Size != size || len(big.Sparse) != len(regs) {
				t.Fatalf("exported big: size %d, map %v; want size %d, %d regions", big.Size, big.Sparse, int64(size), len(regs))
			}
			rd := tarindex.NewReader(ix, bytes.NewReader(out), tarindex.ReaderOptions{})
			defer rd.Close()
			for i, reg := range regs {
				// Regions are padded to whole blocks (blockRegions).
				if s := big.Sparse[i]; s.Offset != reg.Offset || s.Length < int64(len(reg.Data)) || s.Length > int64(len(reg.Data))+511 {
					t.Errorf("region %d = %d+%d, want %d+%d, padded to at most 511 bytes more", i, s.Offset, s.Length, reg.Offset, len(reg.Data))
				}
				// One byte of hole on each side, where there is one.
				lo := max(reg.Offset-1, 0)
				hi := min(reg.Offset+int64(len(reg.Data))+1, size)
				got := make([]byte, hi-lo)
				if _, err := rd.ReadAt(big, got, lo); err != nil && err != io.EOF {
					t.Fatalf("ReadAt(big, %d) = %v", lo, err)
				}
				want := make([]byte, hi-lo)
				copy(want[reg.Offset-lo:], reg.Data)
				if !bytes.Equal(got, want) {
					t.Errorf("big at %d: exported bytes differ from the layer's", lo)
				}
			}
		})
	}
}

// TestExportSparseGNUTar: GNU tar extracts export's sparse file to
// exactly the bytes put in, with its holes as holes on disk.
func TestExportSparseGNUTar(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		testenv.Unavailable(t, "GNU tar not found: %v", err)
	}
	const size = 6<<20 + 12345 // the last region ends 1 MiB before the end
	var regs []tartest.Region
	for i, off := range []int64{0, 300_000, 1 << 20, 1<<20 + 70_000, 3<<20 + 1, 5<<20 - 5000} {
		regs = append(regs, tartest.Region{Offset: off, Data: tartest.RandomData(t, fmt.Sprint(i), 4096+i*9000)})
	}
	want := make([]byte, size)
	var data int64
	for _, reg := range regs {
		copy(want[reg.Offset:], reg.Data)
		data += int64(len(reg.Data))
	}
	l := (&tartest.Layer{}).Dir("d").Sparse("d/sparse", size, regs).
		Sparse("holes-only", 1<<20, nil).
		File("d/plain", []byte("plain"))
	r := openLayers(t, tartest.Gzip, l)

	dir := t.TempDir()
	archive := filepath.Join(dir, "export.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := Export(context.Background(), f, r); err != nil {
		t.Fatalf("Export: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(archive); err != nil || fi.Size() > data+64<<10 {
		t.Errorf("export of %d bytes of data is %v bytes (%v)", data, fi.Size(), err)
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xf", archive, "-C", root).CombinedOutput(); err != nil {
		t.Fatalf("tar -xf: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		want []byte
		data int64
	}{
		{"d/sparse", want, data},
		{"holes-only", make([]byte, 1<<20), 0},
	} {
		p := filepath.Join(root, tc.name)
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read what GNU tar extracted: %v", err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: GNU tar extracted %d bytes, want %d, contents differ", tc.name, len(got), len(tc.want))
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		// Allow a few blocks of rounding per region.
		if used := fi.Sys().(*syscall.Stat_t).Blocks * 512; used > tc.data+int64(len(regs))*64<<10 {
			t.Errorf("%s: %d bytes on disk for %d of data in %d: not sparse", tc.name, used, tc.data, fi.Size())
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "d/plain")); err != nil || string(b) != "plain" {
		t.Errorf("d/plain = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, "d/GNUSparseFile.0")); err == nil {
		t.Errorf("GNU tar left the GNUSparseFile name: it did not read the sparse format")
	}
}

func TestBlockRegions(t *testing.T) {
	// rs makes regions from offset, length pairs.
	rs := func(v ...int64) []tarindex.SparseRegion {
		var out []tarindex.SparseRegion
		for i := 0; i < len(v); i += 2 {
			out = append(out, tarindex.SparseRegion{Offset: v[i], Length: v[i+1]})
		}
		return out
	}
	vectors := []struct {
		name string
		regs []tarindex.SparseRegion
		size int64
		want []tarindex.SparseRegion
	}{
		{"all hole", nil, 1000, rs(1000, 0)},
		{"empty file", nil, 0, rs(0, 0)},
		{"data to the end", rs(0, 10), 10, rs(0, 10)},
		{"last region unpadded", rs(0, 512, 2048, 10), 4096, rs(0, 512, 2048, 10, 4096, 0)},
		{"padded into the hole", rs(0, 10, 2048, 10), 2058, rs(0, 512, 2048, 10)},
		{"padding reaches the next", rs(0, 10, 100, 10, 2000, 1), 3000, rs(0, 512, 2000, 1, 3000, 0)},
		{"padding overlaps the next", rs(0, 10, 500, 600, 5000, 1), 6000, rs(0, 1536, 5000, 1, 6000, 0)},
		{"padding clipped to size", rs(0, 10, 600, 10), 700, rs(0, 512, 600, 10, 700, 0)},
		{"unaligned offsets", rs(7, 513, 3000, 5), 3005, rs(7, 1024, 3000, 5)},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			got := blockRegions(tc.regs, tc.size)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("blockRegions(%v, %d) = %v, want %v", tc.regs, tc.size, got, tc.want)
			}
		})
	}
}
