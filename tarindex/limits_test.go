package tarindex

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
)

// tarOf writes n entries made by hdr(i), with no data.
func tarOf(t testing.TB, n int, hdr func(i int) *tar.Header) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for i := range n {
		if err := tw.WriteHeader(hdr(i)); err != nil {
			t.Fatalf("WriteHeader: %v", err)
		}
	}
	tw.Close()
	return b.Bytes()
}

// TestLimits: each limit stops Build with ErrLimit and says which.
func TestLimits(t *testing.T) {
	empty := func(i int) *tar.Header {
		return &tar.Header{Name: fmt.Sprintf("e%d", i), Typeflag: tar.TypeReg, Mode: 0o644}
	}
	vectors := []struct {
		name   string
		raw    []byte
		limits Limits
		substr string // "" means Build must succeed
	}{
		{"entries at the limit", tarOf(t, 100, empty), Limits{MaxEntries: 100}, ""},
		{"entries over the limit", tarOf(t, 101, empty), Limits{MaxEntries: 100}, "more than 100 entries"},
		{"long name", tarOf(t, 1, func(int) *tar.Header {
			return &tar.Header{Name: strings.Repeat("d/", 2100), Typeflag: tar.TypeDir}
		}), Limits{}, "name or link target of 4199 bytes, limit 4096"},
		{"long symlink target", tarOf(t, 1, func(int) *tar.Header {
			return &tar.Header{Name: "l", Linkname: strings.Repeat("x", 5000), Typeflag: tar.TypeSymlink}
		}), Limits{}, "limit 4096"},
		{"xattrs", tarOf(t, 1, func(int) *tar.Header {
			return &tar.Header{Name: "f", Typeflag: tar.TypeReg, PAXRecords: map[string]string{"SCHILY.xattr.user.a": strings.Repeat("v", 2000)}}
		}), Limits{MaxXattrBytes: 1000}, "xattrs of 2006 bytes, limit 1000"},
		{"index memory", tarOf(t, 1000, empty), Limits{MaxIndexBytes: 100 << 10}, "bytes of memory, limit 102400"},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			ix, err := Build(context.Background(), bytes.NewReader(tc.raw), descFor(tc.raw, Uncompressed), BuildOptions{Limits: tc.limits})
			if tc.substr == "" {
				if err != nil {
					t.Fatalf("Build: %v", err)
				}
				return
			}
			if ix != nil || !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), tc.substr) {
				t.Errorf("Build = %v, %v; want ErrLimit containing %q", ix != nil, err, tc.substr)
			}
		})
	}
}

// TestTarBomb indexes a gzip layer of many empty entries (a few KiB
// per thousand entries compressed) and checks the memory Build keeps is
// proportional to the entries: under 250 bytes each. OCIFS_BOMB=1 uses
// three million entries, which the default limit refuses.
func TestTarBomb(t *testing.T) {
	n := 100_000
	if os.Getenv("OCIFS_BOMB") == "1" {
		n = 3_000_000
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		for i := range n {
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%d/%d", i%100, i), Typeflag: tar.TypeReg, Mode: 0o644})
		}
		tw.Close()
		pw.Close()
	}()
	var raw bytes.Buffer
	io.Copy(&raw, pr)
	blob := compress(rngFor(t), raw.Bytes(), Gzip, 1)
	t.Logf("%d entries: %d MiB of tar, %d KiB of gzip", n, raw.Len()>>20, len(blob)>>10)
	raw = bytes.Buffer{}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ix, err := Build(context.Background(), bytes.NewReader(blob), descFor(blob, Gzip), BuildOptions{})
	if n > DefaultMaxEntries {
		if !errors.Is(err, ErrLimit) {
			t.Fatalf("Build of %d entries = %v, want ErrLimit", n, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(len(ix.Entries))
	t.Logf("%.0f bytes of heap per entry", per)
	if len(ix.Entries) != n || per > 250 {
		t.Errorf("%d entries, %.0f bytes each; want %d, at most 250", len(ix.Entries), per, n)
	}
}

// TestTruncatedBlobAtRead truncates the blob after indexing: reads of
// what is gone fail with ErrMalformed, for every compression.
func TestTruncatedBlobAtRead(t *testing.T) {
	raw := smallLayer(t)
	want := readTar(t, raw)
	for _, c := range []Compression{Uncompressed, Gzip, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			blob := compress(rngFor(t), raw, c, 1)
			ix := mustBuild(t, blob, c, BuildOptions{Span: 64 << 10})
			rd := NewReader(ix, bytes.NewReader(blob[:len(blob)/2]), ReaderOptions{})
			last := &ix.Entries[len(ix.Entries)-1]
			buf := make([]byte, last.Size)
			if n, err := rd.ReadAt(last, buf, 0); !errors.Is(err, ErrMalformed) {
				t.Errorf("ReadAt(%q) of a truncated blob = %d, %v; want ErrMalformed", last.Name, n, err)
			}
			first := &ix.Entries[0]
			buf = make([]byte, first.Size)
			if _, err := rd.ReadAt(first, buf, 0); err != nil || !bytes.Equal(buf, want[0].data) {
				t.Errorf("ReadAt(%q) before the cut = %v, or wrong bytes", first.Name, err)
			}
		})
	}
}
