package browse

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/ocifs/ocifs/overlay"
)

// exportLayers: one of each kind of entry, then layers that delete,
// hide, replace and relink.
func exportLayers(t *testing.T) []*tartest.Layer {
	long := strings.Repeat("long-directory-name-", 8)
	l1 := (&tartest.Layer{}).
		Dir(".", tartest.Mode(0o751)).
		Dir("bin").
		File("bin/busybox", tartest.RandomData(t, "busybox", 1<<20+7), tartest.Mode(0o755)).
		Symlink("bin/sh", "busybox").
		Hardlink("bin/ls", "bin/busybox").
		Hardlink("bin/cat", "bin/busybox").
		File("bin/su", []byte("su"), tartest.Mode(0o4755)).
		Dir("tmp", tartest.Mode(0o1777)).
		File("etc/nsec", []byte("ns"), tartest.ModTime(time.Unix(1600000000, 123456789)), tartest.Header(func(h *tar.Header) { h.Format = tar.FormatPAX })).
		Dir("home/user", tartest.Owner(1000, 1000), tartest.Mode(0o700)).
		File("home/user/big-ids", []byte("x"), tartest.Owner(3000000, 4000000)).
		CharDev("dev/null", 1, 3).
		BlockDev("dev/sda", 8, 0).
		Fifo("dev/initctl", tartest.Mode(0o600)).
		File("xattr/f", []byte("x"), tartest.Xattr("user.a", "1"), tartest.Xattr("security.capability", "\x01\x00\x00\x02\x00")).
		Dir("xattr/d", tartest.Xattr("user.dir", "yes")).
		File(long+"/"+strings.Repeat("n", 255), []byte("long name")).
		File("empty", nil).
		Sparse("sparse", 3<<20+5, []tartest.Region{{Offset: 4096, Data: tartest.RandomData(t, "sparse", 70_000)}, {Offset: 2 << 20, Data: []byte("second")}},
			tartest.Owner(3000000, 1<<32-1), tartest.ModTime(time.Unix(1e11, 5)), tartest.Mode(0o640), tartest.Xattr("user.sparse", "yes")).
		Sparse("sparse-old", 1<<20, []tartest.Region{{Offset: 1000, Data: []byte("x")}}, tartest.ModTime(time.Unix(-1e11, 999999999))).
		File("gone", []byte("deleted above"))
	l2 := (&tartest.Layer{}).
		Whiteout("", "gone").
		File("bin/ls", []byte("ls replaced: leaves busybox and cat linked")).
		Opaque("home").
		File("home/new", []byte("after opaque"))
	return []*tartest.Layer{l1, l2}
}

// TestExportRoundTrip reads the exported tar back and compares it, name
// by name, with the merged tree.
func TestExportRoundTrip(t *testing.T) {
	for _, c := range []tartest.Compression{tartest.Plain, tartest.Gzip, tartest.Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			r := openLayers(t, c, exportLayers(t)...)
			var buf bytes.Buffer
			if err := Export(context.Background(), &buf, r); err != nil {
				t.Fatalf("Export: %v", err)
			}
			type name struct {
				path string
				node *overlay.Node
			}
			var want []name
			r.Tree.Walk(func(p string, n *overlay.Node) error {
				want = append(want, name{p, n})
				return nil
			})

			tr := tar.NewReader(&buf)
			first := map[uint64]string{}
			i := 0
			for ; ; i++ {
				hdr, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("read the export: %v", err)
				}
				if i >= len(want) {
					t.Fatalf("extra entry %q", hdr.Name)
				}
				p, n := want[i].path, want[i].node
				e := n.Entry
				wantName := p
				if n.IsDir() {
					wantName += "/"
				}
				if hdr.Name != wantName {
					t.Fatalf("entry %d = %q, want %q", i, hdr.Name, wantName)
				}
				if hdr.Format&tar.FormatPAX == 0 && hdr.Format != tar.FormatUSTAR {
					t.Errorf("%s: format %v, want PAX (or its ustar subset)", p, hdr.Format)
				}
				if f, ok := first[n.ID]; ok {
					if hdr.Typeflag != tar.TypeLink || hdr.Linkname != f {
						t.Errorf("%s: type %q -> %q, want a hardlink to %q", p, hdr.Typeflag, hdr.Linkname, f)
					}
					continue
				}
				if n.Nlink > 1 && !n.IsDir() {
					first[n.ID] = p
				}
				if hdr.Typeflag != e.Type || hdr.Mode != int64(e.Mode) || hdr.Uid != e.UID || hdr.Gid != e.GID ||
					!hdr.ModTime.Equal(e.ModTime()) || hdr.Linkname != e.Linkname ||
					hdr.Devmajor != int64(e.Devmajor) || hdr.Devminor != int64(e.Devminor) {
					t.Errorf("%s: header %+v, want %+v", p, hdr, e)
				}
				xattrs := map[string]string{}
				for k, v := range hdr.PAXRecords {
					if k, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
						xattrs[k] = v
					}
				}
				wantX := map[string]string{}
				for _, x := range e.Xattrs {
					wantX[x.Key] = x.Value
				}
				if !maps.Equal(xattrs, wantX) {
					t.Errorf("%s: xattrs %q, want %q", p, xattrs, wantX)
				}
				got, err := io.ReadAll(tr)
				if err != nil {
					t.Fatalf("read %s from the export: %v", p, err)
				}
				if e.Type == tar.TypeReg {
					var content bytes.Buffer
					if err := copyContents(&content, r, n, make([]byte, 4096)); err != nil {
						t.Fatalf("read %s: %v", p, err)
					}
					if !bytes.Equal(got, content.Bytes()) {
						t.Errorf("%s: %d bytes exported, %d in the tree, differ", p, len(got), content.Len())
					}
				} else if len(got) != 0 {
					t.Errorf("%s: %d bytes of data for a %s", p, len(got), typeName(e.Type))
				}
			}
			if i != len(want) {
				t.Errorf("%d entries exported, the tree has %d names", i, len(want))
			}
			// What the fixture was built to show.
			if len(first) != 1 || first[r.Tree.Lookup(r.Tree.Lookup(r.Tree.Root(), "bin"), "busybox").ID] != "bin/busybox" {
				t.Errorf("hardlink groups %v, want bin/busybox = bin/cat", first)
			}
		})
	}
}

// TestExportStops: a failing writer and a cancelled context end the
// export with their error.
func TestExportStops(t *testing.T) {
	r := openLayers(t, tartest.Gzip, exportLayers(t)...)
	if err := Export(context.Background(), failWriter{}, r); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Export to a failing writer = %v, want disk full", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Export(ctx, io.Discard, r); !errors.Is(err, context.Canceled) {
		t.Errorf("Export with a cancelled context = %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("disk full") }
