package tarindex

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"math/rand"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
)

// wantEntry is what archive/tar reads sequentially, in Entry terms.
type wantEntry struct {
	Entry
	data []byte
}

func readTar(t *testing.T, raw []byte) []wantEntry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(raw))
	var out []wantEntry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("archive/tar Next: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("archive/tar read %q: %v", hdr.Name, err)
		}
		e := Entry{Name: cleanRef(hdr.Name), Type: hdr.Typeflag, Mode: uint32(hdr.Mode & 0o7777), UID: hdr.Uid, GID: hdr.Gid, Mtime: hdr.ModTime.Unix(), MtimeNsec: uint32(hdr.ModTime.Nanosecond()), Devmajor: uint32(hdr.Devmajor), Devminor: uint32(hdr.Devminor)}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeGNUSparse:
			e.Type, e.Size = tar.TypeReg, hdr.Size
		case tar.TypeSymlink:
			e.Linkname = hdr.Linkname
		case tar.TypeLink:
			e.Linkname = cleanRef(hdr.Linkname)
		}
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				e.Xattrs = append(e.Xattrs, Xattr{name, v})
			}
		}
		sort.Slice(e.Xattrs, func(i, j int) bool { return e.Xattrs[i].Key < e.Xattrs[j].Key })
		out = append(out, wantEntry{e, data})
	}
}

// checkIndex compares every entry's metadata and bytes with archive/tar,
// then reads at random offsets and lengths.
func checkIndex(t *testing.T, r *rand.Rand, ix *Index, blob []byte, raw []byte) {
	t.Helper()
	want := readTar(t, raw)
	if len(ix.Entries) != len(want) {
		t.Fatalf("index has %d entries, archive/tar reads %d", len(ix.Entries), len(want))
	}
	rd := NewReader(ix, bytes.NewReader(blob), ReaderOptions{CacheBytes: 2 << 20})
	defer rd.Close()
	for i := range ix.Entries {
		got, w := ix.Entries[i], want[i].Entry
		got.Offset, got.Sparse = 0, nil
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("entry %d = %+v, want %+v", i, got, w)
		}
		e := &ix.Entries[i]
		if e.Type != tar.TypeReg {
			continue
		}
		buf := make([]byte, e.Size+10)
		n, err := rd.ReadAt(e, buf, 0)
		if err != io.EOF || int64(n) != e.Size {
			t.Fatalf("ReadAt(%q, len %d, 0) = %d, %v, want %d, EOF", e.Name, len(buf), n, err, e.Size)
		}
		if !bytes.Equal(buf[:n], want[i].data) {
			t.Fatalf("ReadAt(%q): content differs from archive/tar", e.Name)
		}
	}
	// Random reads, concurrently, across chunk and span boundaries.
	var regs []int
	for i, e := range ix.Entries {
		if e.Size > 0 {
			regs = append(regs, i)
		}
	}
	if len(regs) == 0 {
		return
	}
	type job struct {
		i        int
		off, len int64
	}
	var jobs []job
	for range 150 {
		i := regs[r.Intn(len(regs))]
		size := ix.Entries[i].Size
		off := r.Int63n(size)
		jobs = append(jobs, job{i, off, 1 + r.Int63n(min(size-off, 600<<10))})
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(jobs))
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := w; j < len(jobs); j += 4 {
				jb := jobs[j]
				e := &ix.Entries[jb.i]
				buf := make([]byte, jb.len)
				n, err := rd.ReadAt(e, buf, jb.off)
				if (err != nil && err != io.EOF) || int64(n) != jb.len {
					errs <- errors.New("short read " + e.Name)
					return
				}
				if !bytes.Equal(buf, want[jb.i].data[jb.off:jb.off+jb.len]) {
					errs <- errors.New("content differs " + e.Name)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("random ReadAt: %v", err)
	}
}

// checkEntries reads every regular file of entries, which need not be
// ix's own, through a Reader of ix and compares it with archive/tar.
func checkEntries(t *testing.T, ix *Index, entries []Entry, blob, raw []byte) {
	t.Helper()
	want := readTar(t, raw)
	if len(entries) != len(want) {
		t.Fatalf("%d entries, archive/tar reads %d", len(entries), len(want))
	}
	rd := NewReader(ix, bytes.NewReader(blob), ReaderOptions{})
	defer rd.Close()
	for i := range entries {
		e := &entries[i]
		if e.Type != tar.TypeReg {
			continue
		}
		buf := make([]byte, e.Size)
		if n, err := rd.ReadAt(e, buf, 0); (err != nil && err != io.EOF) || int64(n) != e.Size {
			t.Fatalf("ReadAt(%q) = %d, %v, want %d", e.Name, n, err, e.Size)
		}
		if !bytes.Equal(buf, want[i].data) {
			t.Fatalf("ReadAt(%q): content differs from archive/tar", e.Name)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	vectors := []struct {
		name  string
		comp  Compression
		parts int
	}{
		{"plain", Uncompressed, 1},
		{"gzip", Gzip, 1},
		{"gzip-multi-member", Gzip, 7},
		{"zstd", Zstd, 1},
		{"zstd-multi-frame", Zstd, 9},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			r := rngFor(t)
			raw := randomLayer(r, layerSpec{files: 120, maxSize: 3 << 20, sparse: true})
			blob := compress(r, raw, tc.comp, tc.parts)
			ix := mustBuild(t, blob, tc.comp, BuildOptions{Span: 256 << 10})
			if tc.comp != Uncompressed && len(ix.points) < 4 && tc.parts > 1 {
				t.Errorf("only %d access points", len(ix.points))
			}
			// Through the encoding, as the cache would.
			b, err := ix.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			dix, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			aix, err := DecodeAccess(b)
			if err != nil {
				t.Fatalf("DecodeAccess: %v", err)
			}
			want := *dix
			want.Entries = nil
			if !reflect.DeepEqual(aix, &want) {
				t.Fatalf("DecodeAccess(b) differs from Decode(b) beyond Entries")
			}
			if got, want := aix.Summary(), dix.Summary(); got != want || got.EncodedSize != len(b) {
				t.Fatalf("DecodeAccess(b).Summary() = %+v, want %+v with EncodedSize %d", got, want, len(b))
			}
			dix.encodedSize = 0
			if !reflect.DeepEqual(dix, ix) {
				t.Fatalf("Decode(MarshalBinary(ix)) differs from ix")
			}
			// Read through the Index without entries, given the entries
			// of the other decoding, as a mount reads a cached merged
			// tree's entries; the two agree on everything else.
			mixed := *aix
			mixed.Entries = dix.Entries
			checkIndex(t, r, &mixed, blob, raw)
			t.Logf("%d entries, %d points, blob %d, tar %d, index %d bytes", len(ix.Entries), len(ix.points), len(blob), ix.TarSize, len(b))
		})
	}
}

// TestSparse checks each sparse format on its own, including maps with
// old-GNU extension blocks and files that are all hole.
func TestSparse(t *testing.T) {
	vectors := []struct {
		name  string
		write func(*bytes.Buffer, sparseFile)
	}{
		{"pax-1.0", writePAX1Sparse},
		{"pax-0.1", writePAX01Sparse},
		{"old-gnu", writeOldGNUSparse},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			r := rngFor(t)
			var out bytes.Buffer
			files := []sparseFile{
				{name: "empty-hole", size: 5 << 20},
				randomSparse(r, "a"),
			}
			many := sparseFile{name: "many"}
			for i := range 30 { // > 4 + 21 regions: two old GNU extension blocks
				many.regs = append(many.regs, SparseRegion{Offset: int64(i) * 10000, Length: 100})
				many.data = append(many.data, content(r, 100))
			}
			many.size = 400000
			files = append(files, many)
			for _, f := range files {
				tc.write(&out, f)
			}
			out.Write(make([]byte, 1024))
			raw := out.Bytes()
			ix := mustBuild(t, raw, Uncompressed, BuildOptions{})
			for i, f := range files {
				e := ix.Entries[i]
				var want []SparseRegion
				for _, s := range f.regs {
					if s.Length > 0 {
						want = append(want, s)
					}
				}
				if want == nil {
					want = []SparseRegion{}
				}
				if e.Name != f.name || e.Size != f.size || !reflect.DeepEqual(e.Sparse, want) {
					t.Errorf("entry %d = %q size %d sparse %v, want %q %d %v", i, e.Name, e.Size, e.Sparse, f.name, f.size, want)
				}
			}
			checkIndex(t, r, ix, raw, raw)
			gz := compress(r, raw, Gzip, 1)
			checkIndex(t, r, mustBuild(t, gz, Gzip, BuildOptions{Span: 64 << 10}), gz, raw)
		})
	}
}

// TestNames checks Entry.Name and Linkname cleaning.
func TestNames(t *testing.T) {
	vectors := []struct{ in, want string }{
		{"./", "."}, {"/", "."}, {"a/b/", "a/b"}, {"../../x", "x"}, {"/abs/y", "abs/y"}, {"./a/./b/../c", "a/c"},
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, v := range vectors {
		tw.WriteHeader(&tar.Header{Name: v.in, Typeflag: tar.TypeDir, Mode: 0o755})
	}
	tw.WriteHeader(&tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "/../a/./x"})
	tw.WriteHeader(&tar.Header{Name: "s", Typeflag: tar.TypeSymlink, Linkname: "../a/./x"})
	tw.Close()
	ix := mustBuild(t, b.Bytes(), Uncompressed, BuildOptions{})
	for i, v := range vectors {
		if got := ix.Entries[i].Name; got != v.want {
			t.Errorf("Name(%q) = %q, want %q", v.in, got, v.want)
		}
	}
	if got := ix.Entries[len(vectors)].Linkname; got != "a/x" {
		t.Errorf("hardlink Linkname = %q, want %q", got, "a/x")
	}
	if got := ix.Entries[len(vectors)+1].Linkname; got != "../a/./x" {
		t.Errorf("symlink Linkname = %q, want verbatim %q", got, "../a/./x")
	}
}

func TestCompressionOf(t *testing.T) {
	vectors := []struct {
		mt   string
		want Compression
		err  bool
	}{
		{"application/vnd.oci.image.layer.v1.tar", Uncompressed, false},
		{"application/vnd.oci.image.layer.v1.tar+gzip", Gzip, false},
		{"application/vnd.oci.image.layer.v1.tar+zstd", Zstd, false},
		{"application/vnd.oci.image.layer.nondistributable.v1.tar", Uncompressed, false},
		{"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Gzip, false},
		{"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", Zstd, false},
		{"application/vnd.docker.image.rootfs.diff.tar.gzip", Gzip, false},
		{"application/vnd.docker.image.rootfs.diff.tar", Uncompressed, false},
		{"application/vnd.oci.image.config.v1+json", 0, true},
		{"", 0, true},
	}
	for _, v := range vectors {
		got, err := CompressionOf(v.mt)
		if (err != nil) != v.err || got != v.want {
			t.Errorf("CompressionOf(%q) = %v, %v, want %v (error %v)", v.mt, got, err, v.want, v.err)
		}
		if err != nil && !errors.Is(err, ErrMediaType) {
			t.Errorf("CompressionOf(%q) error %v does not wrap ErrMediaType", v.mt, err)
		}
	}
}

// recordingReaderAt records which byte ranges were read.
type recordingReaderAt struct {
	r      io.ReaderAt
	mu     sync.Mutex
	ranges [][2]int64
}

func (r *recordingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.r.ReadAt(p, off)
	r.mu.Lock()
	r.ranges = append(r.ranges, [2]int64{off, off + int64(n)})
	r.mu.Unlock()
	return n, err
}

// TestLazyRead proves laziness: reading one small file near the end of a
// large gzip layer touches only the compressed bytes of its span.
func TestLazyRead(t *testing.T) {
	r := rngFor(t)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for i := range 24 {
		data := content(r, 512<<10)
		tw.WriteHeader(&tar.Header{Name: "big/" + string(rune('a'+i%26)) + strings.Repeat("x", i), Size: int64(len(data)), Mode: 0o644, Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	small := []byte("hello from the end of the layer\n")
	tw.WriteHeader(&tar.Header{Name: "etc/small", Size: int64(len(small)), Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Write(small)
	tw.Close()
	blob := compress(r, b.Bytes(), Gzip, 1)
	ix := mustBuild(t, blob, Gzip, BuildOptions{Span: 1 << 20})

	rec := &recordingReaderAt{r: bytes.NewReader(blob)}
	rd := NewReader(ix, rec, ReaderOptions{})
	e := &ix.Entries[len(ix.Entries)-1]
	got := make([]byte, len(small))
	if n, err := rd.ReadAt(e, got, 0); err != nil || !bytes.Equal(got[:n], small) {
		t.Fatalf("ReadAt(%q) = %q, %v, want %q", e.Name, got[:n], err, small)
	}
	seg := sort.Search(len(ix.points), func(i int) bool { return ix.points[i].U > e.Offset }) - 1
	lo := ix.points[seg].C
	hi := ix.BlobSize
	if seg+1 < len(ix.points) {
		hi = ix.points[seg+1].C + 1
	}
	var total int64
	for _, rg := range rec.ranges {
		total += rg[1] - rg[0]
		if rg[0] < lo || rg[1] > hi {
			t.Errorf("read blob range [%d,%d), outside span [%d,%d)", rg[0], rg[1], lo, hi)
		}
	}
	t.Logf("read %d of %d compressed bytes (%d access points)", total, len(blob), len(ix.points))
	if total > int64(len(blob))/8 {
		t.Errorf("read %d bytes of a %d-byte blob: not lazy", total, len(blob))
	}
}
