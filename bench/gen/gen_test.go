package gen

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

// tiny is small enough for `go test -race` and still has every kind of
// entry and every whiteout rule.
var tiny = Options{Seed: 7, Files: 500, Bytes: 1 << 20}

func TestGenerateIsReproducible(t *testing.T) {
	a, err := Generate(context.Background(), t.TempDir(), tiny)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	b, err := Generate(context.Background(), t.TempDir(), tiny)
	if err != nil {
		t.Fatalf("Generate again: %v", err)
	}
	other := tiny
	other.Seed++
	c, err := Generate(context.Background(), t.TempDir(), other)
	if err != nil {
		t.Fatalf("Generate with seed %d: %v", other.Seed, err)
	}
	for i := range a.Layers {
		if a.Layers[i].Gzip.Digest != b.Layers[i].Gzip.Digest || a.Layers[i].Zstd.Digest != b.Layers[i].Zstd.Digest {
			t.Errorf("layer %d: digests differ between two runs with the same options", i)
		}
		if a.Layers[i].DiffID == c.Layers[i].DiffID {
			t.Errorf("layer %d: same diff_id with seeds %d and %d", i, tiny.Seed, other.Seed)
		}
	}
}

func TestLayers(t *testing.T) {
	m, err := Generate(context.Background(), t.TempDir(), tiny)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if len(m.Layers) < 3 {
		t.Fatalf("got %d layers, want at least 3", len(m.Layers))
	}
	var total Counts
	for i, l := range m.Layers {
		gz := readLayer(t, m.BlobPath(l.Gzip.Digest), func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) })
		zs := readLayer(t, m.BlobPath(l.Zstd.Digest), func(r io.Reader) (io.Reader, error) { return zstd.NewReader(r) })
		if gz.diffID != l.DiffID || zs.diffID != l.DiffID {
			t.Errorf("layer %d: diff_id of gzip %s, of zstd %s, want %s", i, gz.diffID, zs.diffID, l.DiffID)
		}
		for _, p := range gz.problems {
			t.Errorf("layer %d: %s", i, p)
		}
		if i == 0 && gz.osRelease != osRelease {
			t.Errorf("layer 0: %s = %q, want %q", OSReleasePath, gz.osRelease, osRelease)
		}
		total.add(l.Counts)
	}
	if total.Whiteouts == 0 || total.Opaques == 0 || total.Hardlinks == 0 || total.Symlinks == 0 {
		t.Errorf("totals %+v: want whiteouts, opaque directories, hardlinks and symlinks", total)
	}
	if got := total.Files + total.Symlinks + total.Hardlinks; got < tiny.Files*9/10 || got > tiny.Files*11/10 {
		t.Errorf("%d non-directory entries, want about %d", got, tiny.Files)
	}
	if total.Bytes < tiny.Bytes*9/10 || total.Bytes > tiny.Bytes*11/10 {
		t.Errorf("%d bytes of contents, want about %d", total.Bytes, tiny.Bytes)
	}
}

type layerFacts struct {
	diffID    digest.Digest
	osRelease string
	problems  []string
}

// readLayer checks the tar rules the benchmarks rely on: parents before
// children, hardlink targets before links, no layer that both deletes a
// path and has entries below it.
func readLayer(t *testing.T, blob string, decompress func(io.Reader) (io.Reader, error)) layerFacts {
	t.Helper()
	f, err := os.Open(blob)
	if err != nil {
		t.Fatalf("open blob: %v", err)
	}
	defer f.Close()
	r, err := decompress(f)
	if err != nil {
		t.Fatalf("decompress %s: %v", blob, err)
	}
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(r, h))
	var facts layerFacts
	seen := map[string]byte{}
	var deleted []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read tar of %s: %v", blob, err)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if dir := path.Dir(name); dir != "." && seen[dir] != tar.TypeDir {
			facts.problems = append(facts.problems, name+": parent not a directory seen before")
		}
		if hdr.Typeflag == tar.TypeLink && seen[hdr.Linkname] != tar.TypeReg {
			facts.problems = append(facts.problems, name+": hardlink to "+hdr.Linkname+", not a file seen before")
		}
		if base := path.Base(name); strings.HasPrefix(base, whiteoutPrefix) && base != opaqueMarker {
			deleted = append(deleted, path.Join(path.Dir(name), strings.TrimPrefix(base, whiteoutPrefix)))
		}
		seen[name] = hdr.Typeflag
		if name == OSReleasePath {
			b, _ := io.ReadAll(tr)
			facts.osRelease = string(b)
		}
	}
	_, _ = io.Copy(io.Discard, r)
	for _, d := range deleted {
		for name := range seen {
			if name == d || strings.HasPrefix(name, d+"/") {
				facts.problems = append(facts.problems, name+": in the same layer as its whiteout")
			}
		}
	}
	facts.diffID = digest.NewDigest(digest.SHA256, h)
	return facts
}

func TestComparePath(t *testing.T) {
	vectors := []struct{ a, b string }{
		{"a", "a/b"},   // a directory before its contents
		{"a/b", "a-b"}, // '/' before every other byte
		{"a/z", "a0"},
		{"usr/bin/x", "usr/bin/x-y"}, // a hardlink name after its target
	}
	for _, v := range vectors {
		if comparePath(v.a, v.b) >= 0 || comparePath(v.b, v.a) <= 0 {
			t.Errorf("comparePath(%q, %q) = %d, want < 0", v.a, v.b, comparePath(v.a, v.b))
		}
	}
}

func TestScaleOptions(t *testing.T) {
	vectors := []struct {
		scale string
		files int
		bytes int64
	}{
		{"10k", 10000, 10000 * bytesPerFile},
		{"100k", 100000, 100000 * bytesPerFile},
		{"300K", 300000, 100000 * bytesPerFile},
		{"2500", 2500, 2500 * bytesPerFile},
	}
	for _, v := range vectors {
		o, err := ScaleOptions(v.scale, 1)
		if err != nil || o.Files != v.files || o.Bytes != v.bytes {
			t.Errorf("ScaleOptions(%q) = %+v, %v; want %d files, %d bytes", v.scale, o, err, v.files, v.bytes)
		}
	}
	if o, err := ScaleOptions("100k", 1); err != nil || float64(o.Bytes) < 1.5*(1<<30) {
		t.Errorf("ScaleOptions(100k) = %d bytes, want at least 1.5 GiB", o.Bytes)
	}
	for _, bad := range []string{"", "k", "-3", "ten"} {
		if _, err := ScaleOptions(bad, 1); err == nil {
			t.Errorf("ScaleOptions(%q): no error", bad)
		}
	}
}
