package main

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/moby/sys/mountinfo"
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
		Example: `  ocifs umount /mnt/img

  # a shell is still inside: detach now, finish when it leaves
  ocifs umount --lazy /mnt/img`,
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
	if m.FSType != "fuse."+fs.DefaultName {
		return fmt.Errorf("umount %q: a %s mount, not ocifs; use umount(8)", dir, m.FSType)
	}
	if _, err := os.Stat(m.Mountpoint); errors.Is(err, syscall.ENOTCONN) {
		// The daemon is gone (killed, crashed): nothing will answer
		// the kernel, so only a lazy unmount is sure not to block.
		lazy = true
	}
	return unmount(m.Mountpoint, lazy)
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

// findMount reports what is mounted at dir (absolute), the topmost
// mount if several are.
func findMount(dir string) (*mountinfo.Info, bool, error) {
	// Compare real paths: /proc shows mount points with symlinks
	// resolved. Resolve the parent only, since the mount point itself
	// may be a dead FUSE mount that cannot be stat'ed.
	want := dir
	if parent, err := filepath.EvalSymlinks(filepath.Dir(dir)); err == nil {
		want = filepath.Join(parent, filepath.Base(dir))
	}
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return m.Mountpoint != want, false
	})
	if err != nil || len(mounts) == 0 {
		return nil, false, err
	}
	return mounts[len(mounts)-1], true, nil
}
