package fs_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ocifs/ocifs/fs"
	"github.com/ocifs/ocifs/internal/testenv"
	"github.com/ocifs/ocifs/overlay"
	"github.com/ocifs/ocifs/tarindex"
)

// epoch is the mtime of fixture entries unless a test sets one.
var epoch = time.Date(2023, 11, 14, 22, 13, 20, 123456789, time.UTC).UnixNano()

// layerBuilder builds one layer's entries by hand, with their contents
// kept aside for memContent.
type layerBuilder struct {
	entries []tarindex.Entry
	data    map[string][]byte
}

func (b *layerBuilder) add(e tarindex.Entry, data []byte) *layerBuilder {
	if e.Mtime == 0 && e.MtimeNsec == 0 {
		e.Mtime, e.MtimeNsec = epoch/1e9, uint32(epoch%1e9)
	}
	if b.data == nil {
		b.data = map[string][]byte{}
	}
	if data != nil {
		e.Size = int64(len(data))
		b.data[e.Name] = data
	}
	b.entries = append(b.entries, e)
	return b
}

func (b *layerBuilder) dir(name string, mode uint32) *layerBuilder {
	return b.add(tarindex.Entry{Name: name, Type: tar.TypeDir, Mode: mode}, nil)
}

func (b *layerBuilder) file(name string, mode uint32, data []byte) *layerBuilder {
	if data == nil {
		data = []byte{}
	}
	return b.add(tarindex.Entry{Name: name, Type: tar.TypeReg, Mode: mode}, data)
}

func (b *layerBuilder) symlink(name, target string) *layerBuilder {
	return b.add(tarindex.Entry{Name: name, Type: tar.TypeSymlink, Mode: 0o777, Linkname: target}, nil)
}

func (b *layerBuilder) hardlink(name, target string) *layerBuilder {
	return b.add(tarindex.Entry{Name: name, Type: tar.TypeLink, Mode: 0o644, Linkname: target}, nil)
}

// memContent serves fixture contents by layer and entry name, and can
// be told to fail.
type memContent struct {
	layers []map[string][]byte
	fail   map[string]error // entry name → error to return
	mu     sync.Mutex
	reads  int
}

func (c *memContent) ReadAt(n *overlay.Node, p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	if err := c.fail[n.Entry.Name]; err != nil {
		return 0, err
	}
	data, ok := c.layers[n.Layer][n.Entry.Name]
	if !ok {
		return 0, fmt.Errorf("memContent: no data for %q in layer %d", n.Entry.Name, n.Layer)
	}
	if off >= int64(len(data)) {
		return 0, io.EOF
	}
	k := copy(p, data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

// merge builds the tree of the layers, lowest first, and the content
// that serves them.
func merge(t *testing.T, layers ...*layerBuilder) (*overlay.Tree, *memContent) {
	t.Helper()
	in := make([]overlay.Layer, len(layers))
	c := &memContent{}
	for i, l := range layers {
		in[i] = overlay.Layer{Name: fmt.Sprintf("layer%d", i), Entries: l.entries}
		c.layers = append(c.layers, l.data)
	}
	tree, err := overlay.Merge(in, overlay.Options{})
	if err != nil {
		t.Fatalf("overlay.Merge: %v", err)
	}
	return tree, c
}

// requireFUSEMount skips the test unless this process can mount FUSE
// filesystems (root with /dev/fuse, or fusermount3 for everyone
// else). With CI=true it fails instead: CI must run the mounts.
func requireFUSEMount(t *testing.T) {
	t.Helper()
	reason := ""
	if _, err := os.Stat("/dev/fuse"); err != nil {
		reason = fmt.Sprintf("no /dev/fuse: %v", err)
	} else if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			if _, err := exec.LookPath("fusermount"); err != nil {
				reason = "not root and no fusermount3 or fusermount"
			}
		}
	} else if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		reason = fmt.Sprintf("cannot open /dev/fuse: %v", err)
	} else {
		f.Close()
	}
	if reason == "" {
		return
	}
	testenv.Unavailable(t, "FUSE mounts impossible here: %s", reason)
}

// mountTree mounts tree read-only in a fresh directory and unmounts it
// when the test ends.
func mountTree(t *testing.T, tree fs.Tree, c fs.Content, opts fs.MountOptions) string {
	t.Helper()
	requireFUSEMount(t)
	dir := t.TempDir()
	if opts.FsName == "" {
		opts.FsName = "test:" + t.Name()
	}
	server, err := fs.MountTree(dir, tree, c, opts)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	t.Cleanup(func() {
		if err := server.Unmount(); err != nil {
			// A test that left a file open: detach so the
			// temporary directory can go.
			t.Errorf("Unmount(%q): %v", dir, err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// syncLogBuffer is a bytes.Buffer for slog output written from FUSE
// goroutines.
type syncLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
