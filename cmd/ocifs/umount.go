package main

import (
	"bufio"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/fs"
)

func init() { addCommand(newUmountCmd()) }

func newUmountCmd() *cobra.Command {
	var lazy bool
	c := &cobra.Command{
		Use:     "umount [-l] MOUNTPOINT",
		Aliases: []string{"unmount"},
		Short:   "Unmount an ocifs mount; its daemon then exits",
		Long: `umount unmounts an image mounted with 'ocifs mount', as root with
umount(2), otherwise with fusermount3 -u. The daemon exits once the
mount is gone. 'umount MOUNTPOINT' and 'fusermount3 -u MOUNTPOINT' work
as well.

While a file or directory inside is in use the mount is busy and umount
fails; --lazy detaches it at once instead, and the daemon exits when the
last open file is closed. A mount whose daemon has died is always
detached lazily.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUmount(args[0], lazy)
		},
	}
	c.Flags().BoolVarP(&lazy, "lazy", "l", false, "detach now even if busy; the daemon exits when the last open file is closed")
	return c
}

func runUmount(dir string, lazy bool) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("umount %q: %w", dir, err)
	}
	m, ok, err := findMount(abs)
	if err != nil {
		return err
	}
	if !ok {
		if _, err := os.Lstat(abs); errors.Is(err, iofs.ErrNotExist) {
			return fmt.Errorf("umount %q: no such directory", dir)
		}
		return fmt.Errorf("umount %q: not mounted", dir)
	}
	if m.fstype != "fuse."+fs.DefaultName {
		return fmt.Errorf("umount %q: a %s mount, not ocifs; use umount(8)", dir, m.fstype)
	}
	if _, err := os.Stat(m.dir); errors.Is(err, syscall.ENOTCONN) {
		// The daemon is gone (killed, crashed): nothing will answer
		// the kernel, so only a lazy unmount is sure not to block.
		lazy = true
	}
	return unmount(m.dir, lazy)
}

// unmount unmounts dir: with umount2(2) as root, else fusermount3 -u;
// lazy detaches it even while in use.
func unmount(dir string, lazy bool) error {
	if os.Geteuid() == 0 {
		flags := 0
		if lazy {
			flags = unix.MNT_DETACH
		}
		err := unix.Unmount(dir, flags)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EBUSY):
			return fmt.Errorf("unmount %q: %w: a file or directory inside is in use (--lazy detaches it anyway)", dir, err)
		default:
			return fmt.Errorf("unmount %q: %w", dir, err)
		}
	}
	bin, err := fusermount()
	if err != nil {
		return fmt.Errorf("unmount %q: %w", dir, err)
	}
	args := []string{"-u"}
	if lazy {
		args = append(args, "-z")
	}
	out, err := exec.Command(bin, append(args, dir)...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "busy") {
			msg += " (--lazy detaches it anyway)"
		}
		return fmt.Errorf("unmount %q: %s: %w", dir, msg, err)
	}
	return nil
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	dir    string // the mount point
	fstype string // e.g. "fuse.ocifs"
	source string // e.g. the image reference
}

// findMount reports whether dir (absolute) is a mount point, and what
// is mounted there (the last, topmost mount).
func findMount(dir string) (mountEntry, bool, error) {
	// Compare real paths: /proc shows mount points with symlinks
	// resolved. Resolve the parent only, since the mount point itself
	// may be a dead FUSE mount that cannot be stat'ed.
	want := dir
	if parent, err := filepath.EvalSymlinks(filepath.Dir(dir)); err == nil {
		want = filepath.Join(parent, filepath.Base(dir))
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mountEntry{}, false, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	var found mountEntry
	ok := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		// (proc(5)); optional fields end at the lone "-".
		pre, post, cut := strings.Cut(sc.Text(), " - ")
		a, b := strings.Fields(pre), strings.Fields(post)
		if !cut || len(a) < 5 || len(b) < 2 {
			continue
		}
		if unescapeMountinfo(a[4]) == want {
			found = mountEntry{dir: want, fstype: b[0], source: unescapeMountinfo(b[1])}
			ok = true
		}
	}
	if err := sc.Err(); err != nil {
		return mountEntry{}, false, fmt.Errorf("read mount table: %w", err)
	}
	return found, ok, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for space,
// \011 tab, \012 newline, \134 backslash).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }
