package rootfs

import (
	"archive/tar"
	"context"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
)

// TestFarTimes: PAX mtimes outside what int64 nanoseconds hold (after
// 2262, before 1678) keep their seconds exactly through the index, its
// cache, the merge and the cached merged tree.
func TestFarTimes(t *testing.T) {
	vectors := []struct {
		name      string
		sec, nsec int64
	}{
		{"year 5138 (1e11 s)", 1e11, 123456789},
		{"year -1199", -1e11, 5},
		{"2262, last that fits in ns", 9223372035, 999999999},
		{"2262, first that does not", 9223372037, 0},
		{"1970", 0, 1},
		{"1969", -1, 999999999},
	}
	pax := tartest.Header(func(h *tar.Header) { h.Format = tar.FormatPAX })
	l := new(tartest.Layer)
	for _, tc := range vectors {
		l.File(tc.name, []byte("x"), tartest.ModTime(time.Unix(tc.sec, tc.nsec)), pax)
	}
	dir, cache := t.TempDir(), t.TempDir()
	imagetest.WriteLayout(t, dir, imagetest.Image{Tag: "t", Layers: []imagetest.LayerSpec{{Layer: l, Compression: tartest.Gzip}}})
	for _, pass := range []string{"built", "from the cache", "lazy from the cache"} {
		r, err := Open(context.Background(), dir+":t", Options{CacheDir: cache, LazyTree: pass == "lazy from the cache"})
		if err != nil {
			t.Fatalf("Open (%s): %v", pass, err)
		}
		for _, tc := range vectors {
			n := r.Tree.Lookup(r.Tree.Root(), tc.name)
			if n == nil {
				t.Fatalf("Lookup(%q) = nil", tc.name)
			}
			if e := n.Entry; e.Mtime != tc.sec || int64(e.MtimeNsec) != tc.nsec {
				t.Errorf("%s, %s: mtime %d.%09d, want %d.%09d", pass, tc.name, e.Mtime, e.MtimeNsec, tc.sec, tc.nsec)
			}
		}
		if entries, err := r.Entries(context.Background(), 0); err != nil || len(entries) != len(vectors) {
			t.Fatalf("Entries = %d, %v", len(entries), err)
		} else {
			for i, tc := range vectors {
				if e := entries[i]; e.Mtime != tc.sec || int64(e.MtimeNsec) != tc.nsec {
					t.Errorf("%s: index entry %q: mtime %d.%09d, want %d.%09d", pass, e.Name, e.Mtime, e.MtimeNsec, tc.sec, tc.nsec)
				}
			}
		}
		r.Close()
	}
}
