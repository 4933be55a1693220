package fs_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/fs"
	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/ocifs/ocifs/overlay"
	"github.com/ocifs/ocifs/tarindex"
)

// These tests drive the node methods the way go-fuse's bridge does,
// through fusefs.NewNodeFS, without mounting: they run everywhere.

// nodeFS sets up the node tree of tree without mounting it and returns
// its root inode.
func nodeFS(t *testing.T, tree *overlay.Tree, c fs.Content, opts fs.Options) *fusefs.Inode {
	t.Helper()
	root := fs.NewRoot(tree, c, opts)
	fusefs.NewNodeFS(root, &fusefs.Options{NullPermissions: true})
	return root.EmbeddedInode()
}

// walk looks p up from root one name at a time, as the kernel does.
func walk(t *testing.T, root *fusefs.Inode, p string) (*fusefs.Inode, fuse.EntryOut) {
	t.Helper()
	cur := root
	var out fuse.EntryOut
	for _, name := range strings.Split(p, "/") {
		lu, ok := cur.Operations().(fusefs.NodeLookuper)
		if !ok {
			t.Fatalf("Lookup(%q): %T is no NodeLookuper", p, cur.Operations())
		}
		out = fuse.EntryOut{}
		child, errno := lu.Lookup(context.Background(), name, &out)
		if errno != 0 {
			t.Fatalf("Lookup(%q) at %q = %v, want success", p, name, errno)
		}
		cur = child
	}
	return cur, out
}

// capNetBindService is a security.capability value (VFS_CAP_REVISION_2,
// effective, cap_net_bind_service permitted) as setcap writes it: the
// kernel checks the format when it is read.
const capNetBindService = "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// fixture is an image with one of everything, in two layers.
func fixture(t *testing.T) (*overlay.Tree, *memContent) {
	lower := (&layerBuilder{}).
		dir("bin", 0o755).
		file("bin/busybox", 0o755, tartest.RandomData(t, "busybox", 100_000)).
		symlink("bin/sh", "busybox").
		add(tarindex.Entry{Name: "bin/ls", Type: tar.TypeSymlink, Mode: 0o755, Linkname: "busybox"}, nil).
		file("bin/su", 0o4755, []byte("su")).
		file("bin/wall", 0o2755, []byte("wall")).
		dir("dev", 0o755).
		add(tarindex.Entry{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}, nil).
		add(tarindex.Entry{Name: "dev/nvme", Type: tar.TypeBlock, Mode: 0o660, GID: 6, Devmajor: 259, Devminor: 70000}, nil).
		add(tarindex.Entry{Name: "dev/fifo", Type: tar.TypeFifo, Mode: 0o600}, nil).
		dir("etc", 0o755).
		file("etc/passwd", 0o644, []byte("root:x:0:0::/root:/bin/sh\n")).
		file("etc/shadow", 0, []byte("root:*:19000::::::\n")).
		dir("tmp", 0o1777).
		dir("home", 0o755).
		add(tarindex.Entry{Name: "home/user", Type: tar.TypeDir, Mode: 0o700, UID: 1000, GID: 1001}, nil).
		add(tarindex.Entry{Name: "home/user/notes", Type: tar.TypeReg, Mode: 0o600, UID: 1000, GID: 1001, Mtime: -2, MtimeNsec: 500_000_000}, []byte("before 1970\n")).
		file("usr/lib/a", 0o644, []byte("shared")).
		hardlink("usr/lib/b", "usr/lib/a").
		file("empty", 0o644, nil)
	upper := (&layerBuilder{}).
		file("etc/motd", 0o644, []byte("upper\n")).
		add(tarindex.Entry{Name: "etc/cap", Type: tar.TypeReg, Mode: 0o755, Xattrs: []tarindex.Xattr{
			{Key: "security.capability", Value: capNetBindService},
			{Key: "user.comment", Value: "hello"},
		}}, []byte("cap"))
	return merge(t, lower, upper)
}

func TestLookupAttributes(t *testing.T) {
	tree, c := fixture(t)
	root := nodeFS(t, tree, c, fs.Options{})

	// vectors: what stat(2) must show for each fixture path.
	vectors := []struct {
		path      string
		mode      uint32
		uid, gid  uint32
		size      uint64
		rdev      uint32
		nlink     uint32
		mtimeSec  int64
		mtimeNsec uint32
	}{
		{path: "bin", mode: syscall.S_IFDIR | 0o755, nlink: 2},
		{path: "bin/busybox", mode: syscall.S_IFREG | 0o755, size: 100_000, nlink: 1},
		{path: "bin/sh", mode: syscall.S_IFLNK | 0o777, size: uint64(len("busybox")), nlink: 1},
		{path: "bin/ls", mode: syscall.S_IFLNK | 0o777, size: uint64(len("busybox")), nlink: 1}, // as lstat shows any symlink
		{path: "bin/su", mode: syscall.S_IFREG | syscall.S_ISUID | 0o755, size: 2, nlink: 1},
		{path: "bin/wall", mode: syscall.S_IFREG | syscall.S_ISGID | 0o755, size: 4, nlink: 1},
		{path: "dev/null", mode: syscall.S_IFCHR | 0o666, rdev: uint32(unix.Mkdev(1, 3)), nlink: 1},
		{path: "dev/nvme", mode: syscall.S_IFBLK | 0o660, gid: 6, rdev: uint32(unix.Mkdev(259, 70000)), nlink: 1},
		{path: "dev/fifo", mode: syscall.S_IFIFO | 0o600, nlink: 1},
		{path: "etc/shadow", mode: syscall.S_IFREG, size: 19, nlink: 1},
		{path: "tmp", mode: syscall.S_IFDIR | syscall.S_ISVTX | 0o777, nlink: 2},
		{path: "home/user", mode: syscall.S_IFDIR | 0o700, uid: 1000, gid: 1001, nlink: 2},
		{path: "home/user/notes", mode: syscall.S_IFREG | 0o600, uid: 1000, gid: 1001, size: 12, nlink: 1, mtimeSec: -2, mtimeNsec: 500_000_000},
		{path: "usr/lib/a", mode: syscall.S_IFREG | 0o644, size: 6, nlink: 2},
		{path: "usr/lib/b", mode: syscall.S_IFREG | 0o644, size: 6, nlink: 2},
		{path: "empty", mode: syscall.S_IFREG | 0o644, nlink: 1},
		{path: "etc/motd", mode: syscall.S_IFREG | 0o644, size: 6, nlink: 1},
	}
	for _, tc := range vectors {
		t.Run(tc.path, func(t *testing.T) {
			in, out := walk(t, root, tc.path)
			a := out.Attr
			if a.Mode != tc.mode {
				t.Errorf("Lookup(%q) mode = %#o, want %#o", tc.path, a.Mode, tc.mode)
			}
			if a.Uid != tc.uid || a.Gid != tc.gid {
				t.Errorf("Lookup(%q) owner = %d:%d, want %d:%d", tc.path, a.Uid, a.Gid, tc.uid, tc.gid)
			}
			if a.Size != tc.size {
				t.Errorf("Lookup(%q) size = %d, want %d", tc.path, a.Size, tc.size)
			}
			if want := (tc.size + 511) / 512; a.Blocks != want {
				t.Errorf("Lookup(%q) blocks = %d, want %d", tc.path, a.Blocks, want)
			}
			if a.Rdev != tc.rdev {
				t.Errorf("Lookup(%q) rdev = %#x, want %#x", tc.path, a.Rdev, tc.rdev)
			}
			if a.Nlink != tc.nlink {
				t.Errorf("Lookup(%q) nlink = %d, want %d", tc.path, a.Nlink, tc.nlink)
			}
			wantSec, wantNsec := epoch/1e9, uint32(epoch%1e9)
			if tc.mtimeSec != 0 {
				wantSec, wantNsec = tc.mtimeSec, tc.mtimeNsec
			}
			if int64(a.Mtime) != wantSec || a.Mtimensec != wantNsec {
				t.Errorf("Lookup(%q) mtime = %d.%09d, want %d.%09d", tc.path, int64(a.Mtime), a.Mtimensec, wantSec, wantNsec)
			}
			if a.Atime != a.Mtime || a.Ctime != a.Mtime || a.Ctimensec != a.Mtimensec {
				t.Errorf("Lookup(%q) atime/ctime = %d/%d, want mtime %d", tc.path, a.Atime, a.Ctime, a.Mtime)
			}
			if a.Ino != in.StableAttr().Ino {
				t.Errorf("Lookup(%q) ino = %d, inode says %d", tc.path, a.Ino, in.StableAttr().Ino)
			}
			if out.EntryTimeout() != fs.DefaultTimeout || out.AttrTimeout() != fs.DefaultTimeout {
				t.Errorf("Lookup(%q) timeouts = %v/%v, want %v", tc.path, out.EntryTimeout(), out.AttrTimeout(), fs.DefaultTimeout)
			}

			// Getattr must agree with Lookup.
			var ga fuse.AttrOut
			if errno := in.Operations().(fusefs.NodeGetattrer).Getattr(context.Background(), nil, &ga); errno != 0 {
				t.Fatalf("Getattr(%q) = %v", tc.path, errno)
			}
			if ga.Attr != a {
				t.Errorf("Getattr(%q) = %+v, Lookup said %+v", tc.path, ga.Attr, a)
			}
		})
	}

	a, _ := walk(t, root, "usr/lib/a")
	b, _ := walk(t, root, "usr/lib/b")
	if a.StableAttr().Ino != b.StableAttr().Ino {
		t.Errorf("hardlinks usr/lib/a and usr/lib/b have inodes %d and %d, want one", a.StableAttr().Ino, b.StableAttr().Ino)
	}

	lu := root.Operations().(fusefs.NodeLookuper)
	var out fuse.EntryOut
	if _, errno := lu.Lookup(context.Background(), "nonexistent", &out); errno != syscall.ENOENT {
		t.Errorf("Lookup(%q) = %v, want ENOENT", "nonexistent", errno)
	}
}

func TestReaddir(t *testing.T) {
	tree, c := fixture(t)
	root := nodeFS(t, tree, c, fs.Options{})
	etc, _ := walk(t, root, "etc")
	ds, errno := etc.Operations().(fusefs.NodeReaddirer).Readdir(context.Background())
	if errno != 0 {
		t.Fatalf("Readdir(etc) = %v", errno)
	}
	var got []string
	for ds.HasNext() {
		e, errno := ds.Next()
		if errno != 0 {
			t.Fatalf("Next = %v", errno)
		}
		got = append(got, fmt.Sprintf("%s:%o", e.Name, e.Mode))
		if e.Name != "." && e.Name != ".." {
			child, _ := walk(t, root, "etc/"+e.Name)
			if e.Ino != child.StableAttr().Ino {
				t.Errorf("Readdir(etc) %q ino = %d, Lookup says %d", e.Name, e.Ino, child.StableAttr().Ino)
			}
		}
	}
	want := []string{
		fmt.Sprintf(".:%o", syscall.S_IFDIR), fmt.Sprintf("..:%o", syscall.S_IFDIR),
		fmt.Sprintf("cap:%o", syscall.S_IFREG), fmt.Sprintf("motd:%o", syscall.S_IFREG),
		fmt.Sprintf("passwd:%o", syscall.S_IFREG), fmt.Sprintf("shadow:%o", syscall.S_IFREG),
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Readdir(etc) = %v, want %v", got, want)
	}
}

func TestOpenRead(t *testing.T) {
	tree, c := fixture(t)
	root := nodeFS(t, tree, c, fs.Options{})
	ctx := context.Background()
	in, _ := walk(t, root, "bin/busybox")
	want := tartest.RandomData(t, "busybox", 100_000)

	for _, tc := range []struct {
		name  string
		flags uint32
		want  syscall.Errno
	}{
		// ENOSYS tells the kernel to stop sending opens (see Open).
		{"rdonly", syscall.O_RDONLY, syscall.ENOSYS},
		{"wronly", syscall.O_WRONLY, syscall.EROFS},
		{"rdwr", syscall.O_RDWR, syscall.EROFS},
		{"trunc", syscall.O_RDONLY | syscall.O_TRUNC, syscall.EROFS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, errno := in.Operations().(fusefs.NodeOpener).Open(ctx, tc.flags)
			if errno != tc.want {
				t.Fatalf("Open(%#o) = %v, want %v", tc.flags, errno, tc.want)
			}
		})
	}

	rd := in.Operations().(fusefs.NodeReader)
	for _, tc := range []struct {
		off, n int64
		want   []byte
	}{
		{0, 4096, want[:4096]},
		{99_000, 4096, want[99_000:]}, // clipped at the end
		{100_000, 4096, nil},          // at EOF
		{200_000, 10, nil},            // past EOF
		{12345, 1, want[12345:12346]},
	} {
		res, errno := rd.Read(ctx, nil, make([]byte, tc.n), tc.off)
		if errno != 0 {
			t.Errorf("Read(off %d, %d bytes) = %v", tc.off, tc.n, errno)
			continue
		}
		got, _ := res.Bytes(nil)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("Read(off %d, %d bytes) = %d bytes, want %d", tc.off, tc.n, len(got), len(tc.want))
		}
	}

	sh, _ := walk(t, root, "bin/sh")
	if target, errno := sh.Operations().(fusefs.NodeReadlinker).Readlink(ctx); errno != 0 || string(target) != "busybox" {
		t.Errorf("Readlink(bin/sh) = %q, %v; want %q", target, errno, "busybox")
	}
	if _, errno := in.Operations().(fusefs.NodeReadlinker).Readlink(ctx); errno != syscall.EINVAL {
		t.Errorf("Readlink(bin/busybox) = %v, want EINVAL", errno)
	}
}

// TestReadErrors checks the single error → errno conversion: wrapped
// errnos and sentinels keep their meaning, anything else is EIO and
// logged once.
func TestReadErrors(t *testing.T) {
	unknown := errors.New("gzip: invalid checksum")
	vectors := []struct {
		name   string
		err    error
		want   syscall.Errno
		logged bool
	}{
		{"wrapped errno", fmt.Errorf("read blob %q: %w", "sha256:abc", syscall.ENOSPC), syscall.ENOSPC, false},
		{"path error", fmt.Errorf("open blob: %w", &os.PathError{Op: "open", Path: "x", Err: syscall.EACCES}), syscall.EACCES, false},
		{"not exist", fmt.Errorf("layer %d: %w", 3, iofs.ErrNotExist), syscall.ENOENT, false},
		{"permission", fmt.Errorf("blob: %w", iofs.ErrPermission), syscall.EACCES, false},
		{"canceled", fmt.Errorf("read: %w", context.Canceled), syscall.EINTR, false},
		{"unknown", fmt.Errorf("decompress layer %q: %w", "sha256:abc", unknown), syscall.EIO, true},
		{"short", nil, syscall.EIO, true}, // Content returns fewer bytes than the index promised
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			tree, c := fixture(t)
			if tc.err != nil {
				c.fail = map[string]error{"etc/passwd": tc.err}
			} else {
				c.layers[0]["etc/passwd"] = []byte("root")
			}
			var logs syncLogBuffer
			root := nodeFS(t, tree, c, fs.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			in, _ := walk(t, root, "etc/passwd")
			for range 3 {
				_, errno := in.Operations().(fusefs.NodeReader).Read(context.Background(), nil, make([]byte, 100), 0)
				if errno != tc.want {
					t.Fatalf("Read = %v, want %v", errno, tc.want)
				}
			}
			lines := strings.Count(logs.String(), "answering EIO")
			if want := map[bool]int{true: 1, false: 0}[tc.logged]; lines != want {
				t.Errorf("logged %d times, want %d:\n%s", lines, want, logs.String())
			}
		})
	}
}

func TestXattrs(t *testing.T) {
	tree, c := fixture(t)
	root := nodeFS(t, tree, c, fs.Options{})
	ctx := context.Background()
	capNode, _ := walk(t, root, "etc/cap")
	ops := capNode.Operations()
	get := ops.(fusefs.NodeGetxattrer)
	list := ops.(fusefs.NodeListxattrer)

	if n, errno := get.Getxattr(ctx, "user.comment", nil); errno != 0 || n != 5 {
		t.Errorf("Getxattr(user.comment, size query) = %d, %v; want 5", n, errno)
	}
	if n, errno := get.Getxattr(ctx, "user.comment", make([]byte, 2)); errno != syscall.ERANGE || n != 5 {
		t.Errorf("Getxattr(user.comment, 2 bytes) = %d, %v; want 5, ERANGE", n, errno)
	}
	buf := make([]byte, 64)
	if n, errno := get.Getxattr(ctx, "security.capability", buf); errno != 0 || string(buf[:n]) != capNetBindService {
		t.Errorf("Getxattr(security.capability) = %q, %v", buf[:n], errno)
	}
	if _, errno := get.Getxattr(ctx, "user.missing", buf); errno != syscall.ENODATA {
		t.Errorf("Getxattr(user.missing) = %v, want ENODATA", errno)
	}
	wantList := "security.capability\x00user.comment\x00"
	if n, errno := list.Listxattr(ctx, nil); errno != 0 || int(n) != len(wantList) {
		t.Errorf("Listxattr(size query) = %d, %v; want %d", n, errno, len(wantList))
	}
	if n, errno := list.Listxattr(ctx, buf); errno != 0 || string(buf[:n]) != wantList {
		t.Errorf("Listxattr = %q, %v; want %q", buf[:n], errno, wantList)
	}
	if _, errno := list.Listxattr(ctx, make([]byte, 3)); errno != syscall.ERANGE {
		t.Errorf("Listxattr(3 bytes) = %v, want ERANGE", errno)
	}

	motd, _ := walk(t, root, "etc/motd")
	if n, errno := motd.Operations().(fusefs.NodeListxattrer).Listxattr(ctx, buf); errno != 0 || n != 0 {
		t.Errorf("Listxattr(etc/motd) = %d, %v; want empty", n, errno)
	}
}

func TestXattrsShortCircuit(t *testing.T) {
	tree, c := merge(t, (&layerBuilder{}).file("f", 0o644, []byte("x")))
	if tree.HasXattrs() {
		t.Fatalf("HasXattrs() = true for a tree without xattrs")
	}
	root := nodeFS(t, tree, c, fs.Options{})
	f, _ := walk(t, root, "f")
	if _, errno := f.Operations().(fusefs.NodeGetxattrer).Getxattr(context.Background(), "security.capability", make([]byte, 10)); errno != syscall.ENODATA {
		t.Errorf("Getxattr = %v, want ENODATA", errno)
	}
}

func TestStatfs(t *testing.T) {
	tree, c := fixture(t)
	root := nodeFS(t, tree, c, fs.Options{})
	var out fuse.StatfsOut
	if errno := root.Operations().(fusefs.NodeStatfser).Statfs(context.Background(), &out); errno != 0 {
		t.Fatalf("Statfs = %v", errno)
	}
	// Count the fixture: every distinct node, the root included.
	files, blocks := 0, uint64(0)
	seen := map[uint64]bool{}
	var count func(dir *overlay.Node)
	count = func(dir *overlay.Node) {
		for _, e := range tree.ReadDir(dir) {
			if seen[e.Node.ID] {
				continue
			}
			seen[e.Node.ID] = true
			files++
			if e.Node.Entry != nil && e.Node.Entry.Type == tar.TypeReg {
				blocks += uint64(e.Node.Entry.Size+4095) / 4096
			}
			count(e.Node)
		}
	}
	count(tree.Root())
	if out.Files != uint64(files+1) || out.Blocks != blocks || out.Bfree != 0 || out.Bavail != 0 || out.Bsize != 4096 {
		t.Errorf("Statfs = files %d blocks %d free %d bsize %d; want files %d blocks %d free 0 bsize 4096",
			out.Files, out.Blocks, out.Bfree, out.Bsize, files+1, blocks)
	}
}

// TestWritesAreRefused calls every write operation on a directory and
// a file: EROFS, never go-fuse's defaults.
func TestWritesAreRefused(t *testing.T) {
	tree, c := fixture(t)
	root := nodeFS(t, tree, c, fs.Options{})
	ctx := context.Background()
	file, _ := walk(t, root, "etc/passwd")
	dir := root.Operations()
	f := file.Operations()
	var eo fuse.EntryOut
	ops := map[string]func() syscall.Errno{
		"Setattr": func() syscall.Errno {
			return f.(fusefs.NodeSetattrer).Setattr(ctx, nil, &fuse.SetAttrIn{}, &fuse.AttrOut{})
		},
		"Create": func() syscall.Errno {
			_, _, _, e := dir.(fusefs.NodeCreater).Create(ctx, "new", 0, 0o644, &eo)
			return e
		},
		"Tmpfile": func() syscall.Errno {
			_, _, _, e := dir.(fusefs.NodeTmpfiler).Tmpfile(ctx, 0, 0o644, &eo)
			return e
		},
		"Mkdir": func() syscall.Errno { _, e := dir.(fusefs.NodeMkdirer).Mkdir(ctx, "new", 0o755, &eo); return e },
		"Mknod": func() syscall.Errno { _, e := dir.(fusefs.NodeMknoder).Mknod(ctx, "new", 0o644, 0, &eo); return e },
		"Link": func() syscall.Errno {
			_, e := dir.(fusefs.NodeLinker).Link(ctx, file.Operations(), "new", &eo)
			return e
		},
		"Symlink": func() syscall.Errno { _, e := dir.(fusefs.NodeSymlinker).Symlink(ctx, "x", "new", &eo); return e },
		"Unlink":  func() syscall.Errno { return dir.(fusefs.NodeUnlinker).Unlink(ctx, "empty") },
		"Rmdir":   func() syscall.Errno { return dir.(fusefs.NodeRmdirer).Rmdir(ctx, "tmp") },
		"Rename": func() syscall.Errno {
			return dir.(fusefs.NodeRenamer).Rename(ctx, "empty", root.Operations(), "full", 0)
		},
		"Setxattr":    func() syscall.Errno { return f.(fusefs.NodeSetxattrer).Setxattr(ctx, "user.x", []byte("y"), 0) },
		"Removexattr": func() syscall.Errno { return f.(fusefs.NodeRemovexattrer).Removexattr(ctx, "user.x") },
		"Write": func() syscall.Errno {
			_, e := f.(fusefs.NodeWriter).Write(ctx, nil, []byte("x"), 0)
			return e
		},
		"Access(W_OK)": func() syscall.Errno { return f.(fusefs.NodeAccesser).Access(ctx, unix.W_OK) },
	}
	for name, op := range ops {
		if errno := op(); errno != syscall.EROFS {
			t.Errorf("%s = %v, want EROFS", name, errno)
		}
	}
}

func TestAccess(t *testing.T) {
	tree, c := fixture(t)
	root := nodeFS(t, tree, c, fs.Options{})
	for _, tc := range []struct {
		path string
		mask uint32
		want syscall.Errno
	}{
		{"etc/shadow", unix.R_OK, 0}, // the mounting user reads everything
		{"home/user", unix.X_OK, 0},
		{"bin/busybox", unix.X_OK, 0},
		{"etc/passwd", unix.X_OK, syscall.EACCES},
	} {
		in, _ := walk(t, root, tc.path)
		if errno := in.Operations().(fusefs.NodeAccesser).Access(context.Background(), tc.mask); errno != tc.want {
			t.Errorf("Access(%q, %#o) = %v, want %v", tc.path, tc.mask, errno, tc.want)
		}
	}
}

// TestToErrnoIsNotEnough pins what fs/doc.go says of go-fuse's own
// conversion, fusefs.ToErrno, next to ours on the same wrapped errors:
// it unwraps an errno, but not the io/fs sentinels or a cancelled
// context, and answers ENOTSUP for what it does not know. If go-fuse
// changes, this test says the doc (and maybe the reason to keep our
// conversion) is out of date.
func TestToErrnoIsNotEnough(t *testing.T) {
	vectors := []struct {
		name         string
		err          error
		ours, gofuse syscall.Errno
	}{
		{"wrapped errno", fmt.Errorf("read blob: %w", syscall.ENOENT), syscall.ENOENT, syscall.ENOENT},
		{"bare sentinel", iofs.ErrNotExist, syscall.ENOENT, syscall.ENOENT},
		{"wrapped sentinel", fmt.Errorf("lookup %q: %w", "etc/passwd", iofs.ErrNotExist), syscall.ENOENT, syscall.ENOTSUP},
		{"canceled", fmt.Errorf("read: %w", context.Canceled), syscall.EINTR, syscall.ENOTSUP},
		{"unknown", errors.New("inflate gzip member: truncated stream"), syscall.EIO, syscall.ENOTSUP},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			tree, c := fixture(t)
			c.fail = map[string]error{"etc/passwd": tc.err}
			root := nodeFS(t, tree, c, fs.Options{})
			in, _ := walk(t, root, "etc/passwd")
			_, errno := in.Operations().(fusefs.NodeReader).Read(context.Background(), nil, make([]byte, 100), 0)
			if errno != tc.ours {
				t.Errorf("Read with %v = %v, want %v", tc.err, errno, tc.ours)
			}
			if got := fusefs.ToErrno(tc.err); got != tc.gofuse {
				t.Errorf("fusefs.ToErrno(%v) = %v, want %v as fs/doc.go says", tc.err, got, tc.gofuse)
			}
		})
	}
}
