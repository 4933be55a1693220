package fs_test

import (
	"bytes"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/fs"
	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/ocifs/ocifs/overlay"
)

// These tests mount for real. They skip with a reason where FUSE mounts
// are impossible, and fail instead when CI=true.

// mountInfo returns the /proc/self/mountinfo fields of the mount at dir:
// mount options, filesystem type, source and superblock options.
func mountInfo(t *testing.T, dir string) (opts, fstype, source, superOpts string) {
	t.Helper()
	mounts, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) == 0 {
		t.Fatalf("%q is not in the mount table", dir)
	}
	m := mounts[0]
	return m.Options, m.FSType, m.Source, m.VFSOptions
}

func hasOpt(list, opt string) bool {
	for o := range strings.SplitSeq(list, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

func TestMountFixture(t *testing.T) {
	tree, c := fixture(t)
	mnt := mountTree(t, tree, c, fs.MountOptions{FsName: "./layout:fixture"})

	opts, fstype, source, _ := mountInfo(t, mnt)
	if fstype != "fuse.ocifs" || source != "./layout:fixture" {
		t.Errorf("mountinfo type, source = %q, %q; want %q, %q", fstype, source, "fuse.ocifs", "./layout:fixture")
	}
	for _, o := range []string{"ro", "nosuid", "nodev"} {
		if !hasOpt(opts, o) {
			t.Errorf("mount options %q lack %q", opts, o)
		}
	}

	for _, tc := range []struct {
		path string
		mode iofs.FileMode
		size int64
	}{
		{"bin/busybox", 0o755, 100_000},
		{"bin/su", 0o755 | iofs.ModeSetuid, 2},
		{"tmp", iofs.ModeDir | iofs.ModeSticky | 0o777, 0},
		{"etc/shadow", 0, 19},
		{"dev/null", iofs.ModeDevice | iofs.ModeCharDevice | 0o666, 0},
		{"dev/fifo", iofs.ModeNamedPipe | 0o600, 0},
		{"bin/sh", iofs.ModeSymlink | 0o777, 7},
		{"empty", 0o644, 0},
	} {
		fi, err := os.Lstat(filepath.Join(mnt, tc.path))
		if err != nil {
			t.Errorf("Lstat(%q): %v", tc.path, err)
			continue
		}
		if fi.Mode() != tc.mode || fi.Size() != tc.size {
			t.Errorf("Lstat(%q) = %v size %d, want %v size %d", tc.path, fi.Mode(), fi.Size(), tc.mode, tc.size)
		}
	}

	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(mnt, "dev/nvme"), &st); err != nil || unix.Major(st.Rdev) != 259 || unix.Minor(st.Rdev) != 70000 {
		t.Errorf("Lstat(dev/nvme) rdev = %d:%d, %v; want 259:70000", unix.Major(st.Rdev), unix.Minor(st.Rdev), err)
	}
	var a, b unix.Stat_t
	unix.Lstat(filepath.Join(mnt, "usr/lib/a"), &a)
	unix.Lstat(filepath.Join(mnt, "usr/lib/b"), &b)
	if a.Ino == 0 || a.Ino != b.Ino || a.Nlink != 2 || b.Nlink != 2 {
		t.Errorf("hardlinks: ino %d/%d nlink %d/%d; want one inode, nlink 2", a.Ino, b.Ino, a.Nlink, b.Nlink)
	}
	if err := unix.Lstat(filepath.Join(mnt, "home/user/notes"), &st); err != nil || st.Mtim.Sec != -2 || st.Mtim.Nsec != 500_000_000 {
		t.Errorf("Lstat(home/user/notes) mtime = %v, %v; want -2.5e8", st.Mtim, err)
	}

	got, err := os.ReadFile(filepath.Join(mnt, "bin/busybox"))
	if err != nil || !bytes.Equal(got, tartest.RandomData(t, "busybox", 100_000)) {
		t.Errorf("ReadFile(bin/busybox) = %d bytes, %v; want the fixture's 100000", len(got), err)
	}
	// Readable whatever the image's owner and mode say: only the
	// mounting user can reach a mount without allow_other.
	if got, err := os.ReadFile(filepath.Join(mnt, "etc/shadow")); err != nil || string(got) != "root:*:19000::::::\n" {
		t.Errorf("ReadFile(etc/shadow) = %q, %v", got, err)
	}
	if target, err := os.Readlink(filepath.Join(mnt, "bin/sh")); err != nil || target != "busybox" {
		t.Errorf("Readlink(bin/sh) = %q, %v; want busybox", target, err)
	}
	entries, err := os.ReadDir(filepath.Join(mnt, "etc"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if err != nil || strings.Join(names, " ") != "cap motd passwd shadow" {
		t.Errorf("ReadDir(etc) = %v, %v; want [cap motd passwd shadow]", names, err)
	}
	for range 2 { // the second answer comes from the negative entry cache
		if _, err := os.Lstat(filepath.Join(mnt, "etc/nonexistent")); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("Lstat(etc/nonexistent) = %v, want ENOENT", err)
		}
	}

	// xattrs, security.capability included (nosuid ignores it on exec).
	buf := make([]byte, 256)
	if n, err := unix.Lgetxattr(filepath.Join(mnt, "etc/cap"), "user.comment", buf); err != nil || string(buf[:n]) != "hello" {
		t.Errorf("Lgetxattr(etc/cap, user.comment) = %q, %v; want hello", buf[:n], err)
	}
	if n, err := unix.Lgetxattr(filepath.Join(mnt, "etc/cap"), "security.capability", buf); err != nil || n != len(capNetBindService) {
		t.Errorf("Lgetxattr(etc/cap, security.capability) = %d bytes, %v; want %d", n, err, len(capNetBindService))
	}
	if n, err := unix.Llistxattr(filepath.Join(mnt, "etc/cap"), buf); err != nil || string(buf[:n]) != "security.capability\x00user.comment\x00" {
		t.Errorf("Llistxattr(etc/cap) = %q, %v", buf[:n], err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(mnt, "etc/motd"), "user.comment", buf); !errors.Is(err, unix.ENODATA) {
		t.Errorf("Lgetxattr(etc/motd, user.comment) = %v, want ENODATA", err)
	}

	var sfs unix.Statfs_t
	if err := unix.Statfs(mnt, &sfs); err != nil {
		t.Fatalf("Statfs: %v", err)
	}
	if sfs.Flags&unix.ST_RDONLY == 0 || sfs.Files == 0 || sfs.Bfree != 0 || sfs.Bsize != 4096 {
		t.Errorf("Statfs = flags %#x files %d bfree %d bsize %d; want ST_RDONLY, files > 0, no free blocks, bsize 4096",
			sfs.Flags, sfs.Files, sfs.Bfree, sfs.Bsize)
	}
}

func TestMountRefusesWrites(t *testing.T) {
	tree, c := fixture(t)
	mnt := mountTree(t, tree, c, fs.MountOptions{})
	p := func(name string) string { return filepath.Join(mnt, name) }
	for name, op := range map[string]func() error{
		"write existing": func() error { return os.WriteFile(p("etc/passwd"), []byte("x"), 0o644) },
		"open rdwr": func() error {
			f, err := os.OpenFile(p("etc/passwd"), os.O_RDWR, 0)
			if err == nil {
				f.Close()
			}
			return err
		},
		"create":      func() error { return os.WriteFile(p("new"), []byte("x"), 0o644) },
		"mkdir":       func() error { return os.Mkdir(p("newdir"), 0o755) },
		"remove":      func() error { return os.Remove(p("empty")) },
		"rmdir":       func() error { return os.Remove(p("tmp")) },
		"rename":      func() error { return os.Rename(p("empty"), p("full")) },
		"symlink":     func() error { return os.Symlink("x", p("link")) },
		"link":        func() error { return os.Link(p("empty"), p("link")) },
		"chmod":       func() error { return os.Chmod(p("empty"), 0o600) },
		"chown":       func() error { return os.Lchown(p("empty"), 1, 1) },
		"truncate":    func() error { return os.Truncate(p("etc/passwd"), 0) },
		"mkfifo":      func() error { return unix.Mkfifo(p("fifo2"), 0o644) },
		"setxattr":    func() error { return unix.Lsetxattr(p("empty"), "user.x", []byte("y"), 0) },
		"rmxattr":     func() error { return unix.Lremovexattr(p("etc/cap"), "user.comment") },
		"utimes":      func() error { return os.Chtimes(p("empty"), time.Now(), time.Now()) },
		"access W_OK": func() error { return unix.Access(p("empty"), unix.W_OK) },
	} {
		if err := op(); !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s = %v, want EROFS", name, err)
		}
	}
}

// TestMountWithoutXattrs checks the short-circuit: with no xattrs in
// the image, the kernel is told once that there are none and stops
// asking (getxattr and listxattr fail with EOPNOTSUPP).
func TestMountWithoutXattrs(t *testing.T) {
	tree, c := merge(t, (&layerBuilder{}).file("f", 0o755, []byte("x")))
	mnt := mountTree(t, tree, c, fs.MountOptions{})
	buf := make([]byte, 64)
	for range 2 {
		if _, err := unix.Lgetxattr(filepath.Join(mnt, "f"), "security.capability", buf); !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("Lgetxattr(f) = %v, want EOPNOTSUPP", err)
		}
		if _, err := unix.Llistxattr(filepath.Join(mnt, "f"), buf); !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("Llistxattr(f) = %v, want EOPNOTSUPP", err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || string(got) != "x" {
		t.Errorf("ReadFile(f) = %q, %v", got, err)
	}
}

func TestMountOptions(t *testing.T) {
	tree, c := merge(t, (&layerBuilder{}).file("f", 0o644, []byte("x")))
	mnt := mountTree(t, tree, c, fs.MountOptions{Dev: true, Suid: true, Extra: []string{"noexec"}, Name: "other"})
	opts, fstype, source, _ := mountInfo(t, mnt)
	if fstype != "fuse.other" || source != "test:"+t.Name() {
		t.Errorf("mountinfo type, source = %q, %q", fstype, source)
	}
	if !hasOpt(opts, "ro") || hasOpt(opts, "nodev") || hasOpt(opts, "nosuid") || !hasOpt(opts, "noexec") {
		t.Errorf("mount options = %q, want ro, noexec and neither nodev nor nosuid", opts)
	}
}

// TestMountKeepsPageCache reads a file twice, closing it in between:
// the second read must come from the kernel's page cache, not from
// Content, because contents never change (see Open).
func TestMountKeepsPageCache(t *testing.T) {
	data := bytes.Repeat([]byte("cached "), 10000)
	tree, c := merge(t, (&layerBuilder{}).file("f", 0o644, data))
	mnt := mountTree(t, tree, c, fs.MountOptions{})
	first := 0
	for i := range 3 {
		got, err := os.ReadFile(filepath.Join(mnt, "f"))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadFile(f) #%d = %d bytes, %v; want %d bytes", i+1, len(got), err, len(data))
		}
		c.mu.Lock()
		reads := c.reads
		c.mu.Unlock()
		switch {
		case i == 0 && reads == 0:
			t.Fatalf("the first read did not reach Content")
		case i == 0:
			first = reads
		case reads != first:
			t.Errorf("read #%d reached Content (%d reads, %d after the first): the page cache was dropped on open", i+1, reads, first)
		}
	}
}

// TestMountCachesListings lists a directory too big for one READDIR
// several times: every listing must be whole and in order, and only
// the first may reach the daemon, with no OPENDIR after the first
// (see noOpendir).
func TestMountCachesListings(t *testing.T) {
	b := &layerBuilder{}
	b.dir("big", 0o755)
	var want []string
	for i := range 3000 {
		name := fmt.Sprintf("entry-%04d-%s", i, strings.Repeat("x", 40))
		b.file("big/"+name, 0o644, nil)
		want = append(want, name)
	}
	merged, c := merge(t, b)
	tree := &countingTree{Tree: merged}
	var logs syncLogBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mnt := mountTree(t, tree, c, fs.MountOptions{Options: fs.Options{Logger: log}, Debug: true})

	requests := func(op string) int { return strings.Count(logs.String(), " "+op+" ") }
	for i := range 3 {
		f, err := os.Open(filepath.Join(mnt, "big"))
		if err != nil {
			t.Fatal(err)
		}
		// Small batches: many getdents calls at growing offsets.
		var got []string
		for {
			names, err := f.Readdirnames(7)
			got = append(got, names...)
			if err != nil {
				break
			}
		}
		f.Close()
		if !slices.Equal(got, want) {
			t.Fatalf("listing #%d: %d names, want %d (first %q)", i+1, len(got), len(want), got[:min(3, len(got))])
		}
		switch {
		case i == 0 && requests("READDIRPLUS")+requests("READDIR") < 2:
			t.Fatalf("the first listing took %d READDIR(PLUS), want several:\n%s", requests("READDIRPLUS")+requests("READDIR"), logs.String())
		case i == 0:
			logs.mu.Lock()
			logs.buf.Reset()
			logs.mu.Unlock()
		case requests("OPENDIR")+requests("READDIR")+requests("READDIRPLUS")+requests("RELEASEDIR") > 0:
			t.Errorf("listing #%d reached the daemon:\n%s", i+1, logs.String())
		}
	}
	// One listing, many requests: the directory is listed once, not
	// once per request (quadratic in its size).
	if n := tree.readDirs.Load(); n != 1 {
		t.Errorf("the tree listed the directory %d times, want once", n)
	}
}

// countingTree counts the listings made from a tree.
type countingTree struct {
	*overlay.Tree
	readDirs atomic.Int64
}

func (c *countingTree) ReadDirChecked(dir *overlay.Node) ([]overlay.DirEntry, error) {
	c.readDirs.Add(1)
	return c.Tree.ReadDirChecked(dir)
}

func TestMountReadError(t *testing.T) {
	tree, c := fixture(t)
	c.fail = map[string]error{"etc/passwd": errors.New("zstd: corrupt frame")}
	var logs syncLogBuffer
	mnt := mountTree(t, tree, c, fs.MountOptions{Options: fs.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	for range 2 {
		if _, err := os.ReadFile(filepath.Join(mnt, "etc/passwd")); !errors.Is(err, syscall.EIO) {
			t.Errorf("ReadFile(etc/passwd) = %v, want EIO", err)
		}
	}
	if n := strings.Count(logs.String(), "zstd: corrupt frame"); n != 1 {
		t.Errorf("the error was logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestMountConcurrent reads random ranges of random files and walks the
// tree from many goroutines at once; run it with -race.
func TestMountConcurrent(t *testing.T) {
	l := (&layerBuilder{}).dir("d", 0o755)
	const files = 64
	want := make(map[string][]byte, files)
	for i := range files {
		name := "d/" + strings.Repeat("f", 1+i%7) + string(rune('a'+i%26)) + "-" + string(rune('0'+i/26))
		data := tartest.RandomData(t, name, (i*7919)%(300<<10))
		want[name] = data
		l.file(name, 0o644, data)
	}
	tree, c := merge(t, l)
	mnt := mountTree(t, tree, c, fs.MountOptions{})
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for g := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 200 {
				name := names[r.IntN(len(names))]
				data := want[name]
				f, err := os.Open(filepath.Join(mnt, name))
				if err != nil {
					report(err)
					return
				}
				off := int64(0)
				if len(data) > 0 {
					off = r.Int64N(int64(len(data)))
				}
				buf := make([]byte, 1+r.IntN(64<<10))
				n, _ := f.ReadAt(buf, off)
				f.Close()
				if end := min(off+int64(len(buf)), int64(len(data))); !bytes.Equal(buf[:n], data[off:end]) {
					report(errors.New("wrong bytes from " + name))
					return
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 20 {
				seen := 0
				err := filepath.WalkDir(mnt, func(p string, d iofs.DirEntry, err error) error {
					if err != nil {
						return err
					}
					if _, err := d.Info(); err != nil {
						return err
					}
					seen++
					return nil
				})
				if err != nil {
					report(err)
					return
				}
				if seen != files+2 {
					report(errors.New("walk saw a different tree"))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestUnmountBusy: with a file open, unmounting fails instead of
// hanging, and a lazy unmount lets the open file be read to the end.
func TestUnmountBusy(t *testing.T) {
	requireFUSEMount(t)
	if os.Geteuid() != 0 {
		t.Skip("lazy unmount with umount2(MNT_DETACH) needs root; the CLI tests cover fusermount3 -uz")
	}
	tree, c := fixture(t)
	dir := t.TempDir()
	server, err := fs.Mount(dir, tree, c, fs.MountOptions{})
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	f, err := os.Open(filepath.Join(dir, "bin/busybox"))
	if err != nil {
		syscall.Unmount(dir, syscall.MNT_DETACH)
		t.Fatalf("Open: %v", err)
	}
	start := time.Now()
	if err := server.Unmount(); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("Unmount with a file open = %v, want EBUSY", err)
	}
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
		t.Fatalf("Unmount(MNT_DETACH): %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("unmounting took %v", d)
	}
	buf := make([]byte, 10)
	if _, err := f.ReadAt(buf, 99_990); err != nil {
		t.Errorf("ReadAt after lazy unmount: %v", err)
	}
	f.Close()
	done := make(chan struct{})
	go func() { server.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("server still running 10s after the last file was closed")
	}
}

// TestMountDamagedLazyTree: a tree checked lazily (as a warm mount's
// is) that turns out damaged answers EIO, logged, where the damage is
// used, and serves the rest.
func TestMountDamagedLazyTree(t *testing.T) {
	b := &layerBuilder{}
	for i := range 3000 { // ~190 KiB of records: several checksum blocks
		b.file(fmt.Sprintf("d%d/file-%04d", i%10, i), 0o644, []byte(fmt.Sprint(i)))
	}
	merged, c := merge(t, b)
	enc, _ := merged.MarshalBinary()
	enc = bytes.Clone(enc)
	victim, err := merged.Resolve("d4/file-0504")
	if err != nil {
		t.Fatal(err)
	}
	// The victim's record is in the second 64 KiB block, which
	// neither the root's nor d1's listing reads.
	at := 64 + int(victim.ID-1)*64
	if at>>16 != 1 {
		t.Fatalf("victim record at %d, not in the second block", at)
	}
	enc[at] ^= 0x10
	tree, err := overlay.DecodeLazy(enc)
	if err != nil {
		t.Fatalf("DecodeLazy: %v", err)
	}
	var logs syncLogBuffer
	mnt := mountTree(t, tree, c, fs.MountOptions{Options: fs.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})

	if got, err := os.ReadFile(filepath.Join(mnt, "d1/file-0001")); err != nil || string(got) != "1" {
		t.Errorf("ReadFile(d1/file-0001) = %q, %v; want \"1\"", got, err)
	}
	if _, err := os.ReadDir(filepath.Join(mnt, "d4")); !errors.Is(err, syscall.EIO) {
		t.Errorf("ReadDir(d4) = %v, want EIO", err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "d4/file-0504")); !errors.Is(err, syscall.EIO) {
		t.Errorf("Stat(d4/file-0504) = %v, want EIO", err)
	}
	if !strings.Contains(logs.String(), "corrupt tree encoding") {
		t.Errorf("the damage was not logged:\n%s", logs.String())
	}
}
