package tarindex

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// TestLargeIDs: PAX uid and gid records above 2^32-1 fail Build with an
// error naming the entry and the value, instead of being truncated to
// another owner; 2^32-1 itself, and ids beyond ustar's octal fields,
// are kept.
func TestLargeIDs(t *testing.T) {
	vectors := []struct {
		name     string
		uid, gid int
		err      string // "" for an index
	}{
		{"ustar range", 1000, 1000, ""},
		{"beyond ustar octal, PAX", 3_000_000, 4_000_000, ""},
		{"2^32-1", 1<<32 - 1, 1<<32 - 1, ""},
		{"uid 2^32", 1 << 32, 0, "uid 4294967296"},
		{"gid 2^40+1", 0, 1<<40 + 1, "gid 1099511627777"},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tw := tar.NewWriter(&b)
			if err := tw.WriteHeader(&tar.Header{Name: "owned", Typeflag: tar.TypeReg, Mode: 0o644, Uid: tc.uid, Gid: tc.gid, Format: tar.FormatPAX}); err != nil {
				t.Fatalf("WriteHeader: %v", err)
			}
			tw.Close()
			blob := b.Bytes()
			ix, err := Build(context.Background(), bytes.NewReader(blob), descFor(blob, Uncompressed), BuildOptions{})
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Build = %v", err)
				}
				if e := ix.Entries[0]; e.UID != tc.uid || e.GID != tc.gid {
					t.Errorf("Build: uid %d gid %d, want %d %d", e.UID, e.GID, tc.uid, tc.gid)
				}
				return
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), `"owned"`) {
				t.Fatalf("Build = %v, want ErrMalformed naming \"owned\" and %s", err, tc.err)
			}
		})
	}
}
