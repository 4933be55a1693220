package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/internal/tartest"
)

// sparseRegion is a run of data in a sparse file.
type sparseRegion struct{ off, n int64 }

// sparseFixture is a file of a sparse layer: nil regs is an ordinary
// file.
type sparseFixture struct {
	name string
	size int64
	regs []sparseRegion
}

// sparseFixtures: holes before, between and after data, regions that
// touch (one run of data), data up to EOF, all hole, and an ordinary
// file, which is all data. Regions are whole 512-byte blocks, as GNU
// tar writes them: GNU tar 1.34 misreads the data of others.
var sparseFixtures = []sparseFixture{
	{"holes", 3<<20 + 123, []sparseRegion{{4096, 4096}, {1 << 20, 10240}, {1<<20 + 10240, 512}, {2<<20 + 512, 3072}}},
	{"data-at-eof", 1 << 20, []sparseRegion{{0, 512}, {1<<20 - 4096, 4096}}},
	{"all-hole", 2 << 20, []sparseRegion{}},
	{"plain", 100 << 10, nil},
}

// ustarHeader is a 512-byte ustar header. archive/tar cannot write
// sparse files (it drops GNU.sparse.* records), so the layer is written
// by hand.
func ustarHeader(name string, typ byte, size int64) []byte {
	h := make([]byte, 512)
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	copy(h[124:136], fmt.Sprintf("%011o\x00", size))
	copy(h[136:148], fmt.Sprintf("%011o\x00", tartest.Epoch.Unix()))
	h[156] = typ
	copy(h[257:265], "ustar\x0000")
	copy(h[148:156], "        ")
	var sum int64
	for _, c := range h {
		sum += int64(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return h
}

func pad512(b []byte) []byte {
	return append(b, make([]byte, (512-len(b)%512)%512)...)
}

// sparseLayer writes the fixtures as one tar stream, sparse files in
// GNU's PAX 0.1 format as GNU tar --sparse-version=0.1 writes it
// (GNU.sparse.map and GNU.sparse.name in a PAX header, the entry named
// GNUSparseFile.0/NAME, the data regions one after another as its
// contents), and returns it with each file's full contents.
func sparseLayer(t *testing.T) ([]byte, map[string][]byte) {
	var tarball []byte
	want := map[string][]byte{}
	for _, f := range sparseFixtures {
		full := make([]byte, f.size)
		if f.regs == nil {
			full = tartest.RandomData(t, f.name, int(f.size))
			tarball = append(tarball, ustarHeader(f.name, '0', f.size)...)
			tarball = append(tarball, pad512(full)...)
			want[f.name] = full
			continue
		}
		var data []byte
		var fields []string
		for i, r := range f.regs {
			d := tartest.RandomData(t, fmt.Sprint(f.name, i), int(r.n))
			copy(full[r.off:], d)
			data = append(data, d...)
			fields = append(fields, strconv.FormatInt(r.off, 10), strconv.FormatInt(r.n, 10))
		}
		// GNU tar ends every map with an empty region at the
		// file's size, and reads maps without one wrongly.
		fields = append(fields, strconv.FormatInt(f.size, 10), "0")
		var pax []byte
		for _, kv := range [][2]string{ // as GNU tar writes them
			{"GNU.sparse.size", strconv.FormatInt(f.size, 10)},
			{"GNU.sparse.numblocks", strconv.Itoa(len(fields) / 2)},
			{"GNU.sparse.name", f.name},
			{"GNU.sparse.map", strings.Join(fields, ",")},
		} {
			rec := " " + kv[0] + "=" + kv[1] + "\n"
			n := len(rec) + 1
			for len(strconv.Itoa(n))+len(rec) != n {
				n++
			}
			pax = append(pax, strconv.Itoa(n)+rec...)
		}
		tarball = append(tarball, ustarHeader("PaxHeaders/"+f.name, 'x', int64(len(pax)))...)
		tarball = append(tarball, pad512(pax)...)
		tarball = append(tarball, ustarHeader("GNUSparseFile.0/"+f.name, '0', int64(len(data)))...)
		tarball = append(tarball, pad512(data)...)
		want[f.name] = full
	}
	return append(tarball, make([]byte, 1024)...), want
}

// dataOf is how many bytes of f are data.
func dataOf(f sparseFixture) int64 {
	if f.regs == nil {
		return f.size
	}
	var n int64
	for _, r := range f.regs {
		n += r.n
	}
	return n
}

// seekWant answers SEEK_DATA or SEEK_HOLE by looking at the bytes from
// off on, one at a time, as lseek(2) defines them: -1 for ENXIO.
func seekWant(f sparseFixture, off int64, whence int) int64 {
	isData := func(p int64) bool {
		if f.regs == nil {
			return true
		}
		for _, r := range f.regs {
			if p >= r.off && p < r.off+r.n {
				return true
			}
		}
		return false
	}
	if off >= f.size {
		return -1
	}
	for p := off; p < f.size; p++ {
		if isData(p) == (whence == unix.SEEK_DATA) {
			return p
		}
	}
	if whence == unix.SEEK_DATA {
		return -1
	}
	return f.size // every file ends in a hole
}

// TestMountSparse mounts a layer of sparse files: st_blocks (and so
// du) counts their data, lseek's SEEK_DATA and SEEK_HOLE find the
// holes their maps declare, and cp, with --sparse=always and without,
// copies the same bytes into a file that is sparse too.
func TestMountSparse(t *testing.T) {
	requireMountable(t)
	gnutar := requireTool(t, "tar")
	bin := buildOcifs(t)
	raw, want := sparseLayer(t)

	// The fixture is what GNU tar makes of it.
	extracted := t.TempDir()
	layerTar := filepath.Join(t.TempDir(), "layer.tar")
	if err := os.WriteFile(layerTar, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, gnutar, "-xf", layerTar, "-C", extracted)
	for name, b := range want {
		if got, err := os.ReadFile(filepath.Join(extracted, name)); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("GNU tar extracts %s differently from what the test expects (%v)", name, err)
		}
	}

	layout := filepath.Join(t.TempDir(), "layout")
	writeRawLayout(t, layout, "v1", tartest.Gzip, raw)
	mnt := ocifsMount(t, bin, layout+":v1")
	copies := t.TempDir()
	for _, f := range sparseFixtures {
		t.Run(f.name, func(t *testing.T) {
			p := filepath.Join(mnt, f.name)
			var st unix.Stat_t
			if err := unix.Stat(p, &st); err != nil {
				t.Fatal(err)
			}
			data := dataOf(f)
			if wantBlocks := (data + 511) / 512; st.Size != f.size || st.Blocks != wantBlocks {
				t.Errorf("stat %s = size %d, blocks %d; want %d, %d (%d bytes of data)", f.name, st.Size, st.Blocks, f.size, wantBlocks, data)
			}
			du := strings.Fields(string(run(t, "du", "--block-size=1", p)))
			if len(du) == 0 || du[0] != strconv.FormatInt(st.Blocks*512, 10) {
				t.Errorf("du --block-size=1 %s = %q, want %d", f.name, du, st.Blocks*512)
			}

			fd, err := unix.Open(p, unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			offs := []int64{0, 1, f.size / 2, f.size - 1, f.size, f.size + 1}
			for _, r := range f.regs {
				for _, o := range []int64{r.off, r.off + r.n} {
					offs = append(offs, o-1, o, o+1)
				}
			}
			for _, whence := range []int{unix.SEEK_DATA, unix.SEEK_HOLE} {
				for _, off := range offs {
					if off < 0 {
						continue
					}
					got, err := unix.Seek(fd, off, whence)
					exp := seekWant(f, off, whence)
					switch {
					case exp < 0 && !errors.Is(err, unix.ENXIO):
						t.Errorf("lseek(%s, %d, %s) = %d, %v; want ENXIO", f.name, off, whenceName(whence), got, err)
					case exp >= 0 && (err != nil || got != exp):
						t.Errorf("lseek(%s, %d, %s) = %d, %v; want %d", f.name, off, whenceName(whence), got, err, exp)
					}
				}
			}

			// --sparse=always finds holes by looking for zeros;
			// plain cp (--sparse=auto) keeps only the holes the
			// source reports, through st_blocks and SEEK_HOLE.
			for _, mode := range []string{"always", "auto"} {
				dst := filepath.Join(copies, mode+"-"+f.name)
				if out, err := exec.Command("cp", "--sparse="+mode, p, dst).CombinedOutput(); err != nil {
					t.Fatalf("cp --sparse=%s: %v\n%s", mode, err, out)
				}
				if got := mustRead(t, dst); !bytes.Equal(got, want[f.name]) {
					t.Errorf("cp --sparse=%s of %s: wrong bytes", mode, f.name)
				}
				var cst unix.Stat_t
				if err := unix.Stat(dst, &cst); err != nil {
					t.Fatal(err)
				}
				// The copy may round each run of data up to the
				// destination's blocks, and no more.
				if limit := data + int64(len(f.regs)+1)*2*4096; f.regs != nil && cst.Blocks*512 > limit {
					t.Errorf("cp --sparse=%s of %s takes %d bytes, want at most %d (%d bytes of data)", mode, f.name, cst.Blocks*512, limit, data)
				}
			}
		})
	}
}

func whenceName(w int) string {
	if w == unix.SEEK_DATA {
		return "SEEK_DATA"
	}
	return "SEEK_HOLE"
}
