package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/ocifs/ocifs/overlay"
	"github.com/ocifs/ocifs/tarindex"
)

// treeFiles returns the merged-tree files in cache.
func treeFiles(t *testing.T, cache string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(cache, "tree", "v*", "sha256", "*[0-9a-f]"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestTreeCache: the first Open merges and stores the tree; the next
// one loads it and no layer's entries (that is the point: opening is
// then independent of the number of files), yet serves the same tree
// and bytes, and still finds every layer's entries on demand.
func TestTreeCache(t *testing.T) {
	ref := twoLayers(t)
	cache := t.TempDir()
	ctx := context.Background()

	cold, err := Open(ctx, ref, Options{CacheDir: cache})
	if err != nil {
		t.Fatalf("Open (cold): %v", err)
	}
	defer cold.Close()
	if files := treeFiles(t, cache); len(files) != 1 {
		t.Fatalf("after a cold Open the cache holds tree files %v, want 1", files)
	}
	for i, ix := range cold.Indexes {
		if ix.Entries != nil {
			t.Errorf("cold Open kept the %d entries of layer %d after storing the tree", len(ix.Entries), i+1)
		}
		if ix.Summary().Entries == 0 {
			t.Errorf("layer %d: Summary().Entries = 0 after the entries were dropped", i+1)
		}
	}

	warm, err := Open(ctx, ref, Options{CacheDir: cache})
	if err != nil {
		t.Fatalf("Open (warm): %v", err)
	}
	defer warm.Close()
	for i, ix := range warm.Indexes {
		if ix.Entries != nil {
			t.Errorf("warm Open decoded the entries of layer %d; want only its access points", i+1)
		}
	}
	a, _ := cold.Tree.MarshalBinary()
	b, _ := warm.Tree.MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Errorf("cached tree differs from the merged one")
	}
	if got, want := string(readAll(t, warm, "etc/os-release")), "ID=test\n"; got != want {
		t.Errorf("etc/os-release = %q, want %q", got, want)
	}
	for i := range warm.Layers {
		got, err := warm.Entries(ctx, i)
		if err != nil {
			t.Fatalf("Entries(%d): %v", i, err)
		}
		want, err := cold.Entries(ctx, i)
		if err != nil {
			t.Fatalf("Entries(%d) of the cold Open: %v", i, err)
		}
		if len(want) == 0 || !reflect.DeepEqual(got, want) {
			t.Errorf("Entries(%d) = %d entries, want the %d of the cold Open", i, len(got), len(want))
		}
	}
	if _, err := warm.Entries(ctx, len(warm.Layers)); err == nil {
		t.Errorf("Entries(%d) of a %d-layer image succeeded", len(warm.Layers), len(warm.Layers))
	}
}

// TestTreeCacheBadFile: a cached tree that is corrupt, or made for
// another stack of layers, is not used; it is rebuilt and replaced.
func TestTreeCacheBadFile(t *testing.T) {
	ctx := context.Background()
	// A one-layer image's tree, to pass off as the two-layer one's.
	oneDir := t.TempDir()
	imagetest.WriteLayout(t, oneDir, imagetest.Image{
		Tag:    "t",
		Layers: []imagetest.LayerSpec{{Layer: new(tartest.Layer).File("etc/os-release", []byte("ID=other\n")), Compression: tartest.Gzip}},
	})
	one, err := Open(ctx, oneDir+":t", Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	otherTree, _ := one.Tree.MarshalBinary()
	one.Close()

	for _, tc := range []struct {
		name    string
		corrupt func([]byte) []byte
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-9] }},
		{"empty", func([]byte) []byte { return nil }},
		{"another stack's tree", func([]byte) []byte { return otherTree }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := twoLayers(t)
			cache := t.TempDir()
			r, err := Open(ctx, ref, Options{CacheDir: cache})
			if err != nil {
				t.Fatal(err)
			}
			good, _ := r.Tree.MarshalBinary()
			good = bytes.Clone(good)
			r.Close()
			files := treeFiles(t, cache)
			if len(files) != 1 {
				t.Fatalf("tree files %v, want 1", files)
			}
			b, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(files[0], tc.corrupt(b), 0o600); err != nil {
				t.Fatal(err)
			}

			r, err = Open(ctx, ref, Options{CacheDir: cache})
			if err != nil {
				t.Fatalf("Open with a bad cached tree: %v", err)
			}
			defer r.Close()
			if got := string(readAll(t, r, "etc/os-release")); got != "ID=test\n" {
				t.Errorf("etc/os-release = %q, want %q", got, "ID=test\n")
			}
			b, err = os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, good) {
				t.Errorf("the bad tree file was not replaced by a good one")
			}
			if _, err := overlay.Decode(b); err != nil {
				t.Errorf("Decode(replaced file): %v", err)
			}
		})
	}
}

// TestTreeCacheLazy: with LazyTree, a cached tree damaged beyond its
// first block opens at once and fails only where the damage is used;
// Close then drops the file; an Open without LazyTree finds the damage
// and repairs the cache.
func TestTreeCacheLazy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := new(tartest.Layer)
	for i := range 3000 { // 3000 records: ~190 KiB, several blocks
		l.File(fmt.Sprintf("d%d/file-%04d", i%10, i), []byte(fmt.Sprintf("content %d\n", i)))
	}
	imagetest.WriteLayout(t, dir, imagetest.Image{Tag: "t", Layers: []imagetest.LayerSpec{{Layer: l, Compression: tartest.Gzip}}})
	ref, cache := dir+":t", t.TempDir()
	r, err := Open(ctx, ref, Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := r.Tree.MarshalBinary()
	good = bytes.Clone(good)
	victim, err := r.Tree.Resolve("d4/file-0504")
	if err != nil {
		t.Fatal(err)
	}
	r.Close()

	r, err = Open(ctx, ref, Options{CacheDir: cache, LazyTree: true})
	if err != nil {
		t.Fatalf("Open (lazy): %v", err)
	}
	if got := string(readAll(t, r, "d4/file-0504")); got != "content 504\n" {
		t.Errorf("d4/file-0504 = %q from the lazily checked tree", got)
	}
	r.Close()

	// Damage the victim's record: in the second block, which d1's
	// listing does not read.
	at := 64 + int(victim.ID-1)*64
	if at>>16 != 1 {
		t.Fatalf("victim record at %d, not in the second block", at)
	}
	files := treeFiles(t, cache)
	bad := bytes.Clone(good)
	bad[at] ^= 0x10
	if err := os.WriteFile(files[0], bad, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err = Open(ctx, ref, Options{CacheDir: cache, LazyTree: true})
	if err != nil {
		t.Fatalf("Open (lazy, damaged tree): %v", err)
	}
	if _, err := r.Tree.Resolve("d4/file-0504"); !errors.Is(err, overlay.ErrCorrupt) {
		t.Errorf("Resolve(damaged node) = %v, want ErrCorrupt", err)
	}
	if got := string(readAll(t, r, "d1/file-0001")); got != "content 1\n" {
		t.Errorf("d1/file-0001 = %q next to the damage", got)
	}
	if b, _ := os.ReadFile(files[0]); !bytes.Equal(b, bad) {
		t.Errorf("a lazy Open rewrote the tree file")
	}
	// Close drops a tree whose damage was met, once Decode confirms
	// it, so that the next Open merges again.
	r.Close()
	if _, err := os.Stat(files[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close after meeting damage kept the tree file: %v", err)
	}
	if err := os.WriteFile(files[0], bad, 0o600); err != nil {
		t.Fatal(err)
	}

	r, err = Open(ctx, ref, Options{CacheDir: cache})
	if err != nil {
		t.Fatalf("Open (checked, damaged tree): %v", err)
	}
	r.Close()
	if b, _ := os.ReadFile(files[0]); !bytes.Equal(b, good) {
		t.Errorf("a checked Open did not repair the damaged tree file")
	}
}

// TestTreeKeyNamesRules: a tree merged under older merge rules is never
// served. An ocifs with rules 1 (before issue 16) keyed the tree by the
// layers alone and merged this stack wrongly: its opaque marker under
// the layer's new directory l emptied d through the old symlink. Such a
// file left in the cache must not be found by this ocifs, which merges
// again and keeps d/x.
func TestTreeKeyNamesRules(t *testing.T) {
	dir := t.TempDir()
	lower := new(tartest.Layer).Dir("d").File("d/x", []byte("x\n")).Symlink("l", "d")
	upper := new(tartest.Layer).Dir("l").Opaque("l").File("l/y", []byte("y\n"))
	imagetest.WriteLayout(t, dir, imagetest.Image{Tag: "t", Layers: []imagetest.LayerSpec{
		{Layer: lower, Compression: tartest.Gzip},
		{Layer: upper, Compression: tartest.Gzip},
	}})
	ref := dir + ":t"
	cache := t.TempDir()
	ctx := context.Background()

	r, err := Open(ctx, ref, Options{CacheDir: cache})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	// What rules 1 merged: d empty.
	wrong, err := overlay.Merge([]overlay.Layer{{Entries: []tarindex.Entry{
		{Name: "d", Type: tar.TypeDir, Mode: 0o755},
	}}, {Entries: []tarindex.Entry{
		{Name: "l", Type: tar.TypeDir, Mode: 0o755},
		{Name: "l/y", Type: tar.TypeReg, Mode: 0o644, Size: 2},
	}}}, overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "ocifs merged tree v%d\n", overlay.FormatVersion)
	for _, l := range r.Layers {
		fmt.Fprintf(h, "%s %s\n", l.Descriptor.Digest, l.DiffID)
	}
	r.Close()
	old := filepath.Join(cache, "tree", "v"+strconv.Itoa(overlay.FormatVersion), "sha256", hex.EncodeToString(h.Sum(nil)))
	b, _ := wrong.MarshalBinary()
	for _, f := range treeFiles(t, cache) {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(old, b, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, lazy := range []bool{false, true} {
		r, err := Open(ctx, ref, Options{CacheDir: cache, LazyTree: lazy})
		if err != nil {
			t.Fatalf("Open (lazy %v): %v", lazy, err)
		}
		if got := string(readAll(t, r, "d/x")); got != "x\n" {
			t.Errorf("lazy %v: d/x = %q, want %q", lazy, got, "x\n")
		}
		r.Close()
	}
}
