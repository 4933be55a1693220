package tarindex

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sync"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestVerify: Verify accepts what Build encodes and refuses damage
// anywhere, including a window whose damage the file's checksums no
// longer show (resealed), which Decode accepts.
func TestVerify(t *testing.T) {
	_, _, ix, b := gzipEncoding(t)
	windowsAt, entriesAt := sections(t, ix, b)
	var mid point
	for _, p := range ix.points {
		if p.Kind == pointInflate {
			mid = p
		}
	}
	flip := func(at int) []byte {
		d := append([]byte(nil), b...)
		d[at] ^= 0x10
		return d
	}
	inWindow := windowsAt + mid.winOff + mid.winLen/2
	vectors := []struct {
		name      string
		b         []byte
		decodeErr error // what Decode says, for contrast
	}{
		{"flipped bit in a window", flip(inWindow), ErrCorrupt},
		{"flipped bit in a window, resealed", reseal(flip(inWindow)), nil},
		{"flipped bit in the access points", flip(windowsAt / 2), ErrCorrupt},
		{"flipped bit in the entries", flip(entriesAt + 3), ErrCorrupt},
		{"truncated", b[:len(b)-1], ErrCorrupt},
	}
	if _, err := Verify(b); err != nil {
		t.Fatalf("Verify(good encoding) = %v", err)
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.b); !errors.Is(err, tc.decodeErr) || (tc.decodeErr == nil && err != nil) {
				t.Fatalf("Decode = %v, want %v (the case is not what it says)", err, tc.decodeErr)
			}
			if _, err := Verify(tc.b); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Verify = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestCacheVerify: a cached file damaged in one window is a hit for
// Access (it never inflates windows) and, resealed, for Index; Verify
// rebuilds it, says so through Repaired, and leaves the file a fresh
// build would write.
func TestCacheVerify(t *testing.T) {
	raw, blob, _, _ := gzipEncoding(t)
	ctx := context.Background()
	opts := BuildOptions{Span: 64 << 10}
	desc := descFor(blob, Gzip)
	full := mustBuild(t, blob, Gzip, opts)
	var mu sync.Mutex
	var repaired []error
	c := &Cache{Dir: t.TempDir(), Repaired: func(d ocispec.Descriptor, reason error) {
		mu.Lock()
		defer mu.Unlock()
		if d.Digest != desc.Digest {
			t.Errorf("Repaired(%s), want %s", d.Digest, desc.Digest)
		}
		repaired = append(repaired, reason)
	}}
	p, _ := c.Path(desc)
	if _, err := c.Verify(ctx, bytes.NewReader(blob), desc, opts); err != nil {
		t.Fatalf("Verify (miss): %v", err)
	}
	if len(repaired) != 0 {
		t.Errorf("Repaired called for a missing file: %v", repaired)
	}
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("cache file not written: %v", err)
	}
	windowsAt, _ := sections(t, full, good)
	var mid point
	for _, pt := range full.points {
		if pt.Kind == pointInflate {
			mid = pt
		}
	}
	at := windowsAt + mid.winOff + mid.winLen/2
	for _, resealed := range []bool{false, true} {
		name := map[bool]string{false: "window damaged", true: "window damaged, resealed"}[resealed]
		t.Run(name, func(t *testing.T) {
			repaired = nil
			d := append([]byte(nil), good...)
			d[at] ^= 0x10
			if resealed {
				d = reseal(d)
			}
			if err := os.WriteFile(p, d, 0o644); err != nil {
				t.Fatal(err)
			}
			if ix, err := c.Access(ctx, bytes.NewReader(blob), desc, opts); err != nil || ix.Entries != nil {
				t.Fatalf("Access = %v (rebuilt: %v), want a hit: it does not read windows", err, ix != nil && ix.Entries != nil)
			}
			if resealed {
				if _, err := c.Index(ctx, bytes.NewReader(blob), desc, opts); err != nil {
					t.Fatalf("Index: %v", err)
				}
				if b, _ := os.ReadFile(p); !bytes.Equal(b, d) {
					t.Fatalf("Index rebuilt a resealed file: the case does not test Verify's window check")
				}
			}
			ix, err := c.Verify(ctx, bytes.NewReader(blob), desc, opts)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			checkEntries(t, ix, full.Entries, blob, raw)
			if b, _ := os.ReadFile(p); !bytes.Equal(b, good) {
				t.Errorf("Verify left the damaged file, want it rebuilt")
			}
			if len(repaired) != 1 || !errors.Is(repaired[0], ErrCorrupt) {
				t.Errorf("Repaired calls %v, want one with ErrCorrupt", repaired)
			}
			// And now the file is good: no more repairs.
			repaired = nil
			if _, err := c.Verify(ctx, bytes.NewReader(blob), desc, opts); err != nil || len(repaired) != 0 {
				t.Errorf("Verify of the repaired file = %v, repairs %v; want a hit", err, repaired)
			}
		})
	}
}
