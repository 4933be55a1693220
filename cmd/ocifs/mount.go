package main

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/fs"
	"github.com/ocifs/ocifs/internal/blobcache"
	"github.com/ocifs/ocifs/rootfs"
)

func init() { addCommand(newMountCmd()) }

// mountFlags are the command line of `ocifs mount`.
type mountFlags struct {
	platform   string
	cacheDir   string
	allowOther bool
	dev, suid  bool
	options    []string
	debug      bool
	foreground bool
	logFile    string
	syslog     bool
	cacheMax   sizeFlag
	registry   registryFlags
}

func newMountCmd() *cobra.Command {
	var f mountFlags
	c := &cobra.Command{
		Use:   "mount [flags] REF MOUNTPOINT",
		Short: "Mount an image's root filesystem, read-only, served lazily from its layer blobs",
		Long: `mount resolves REF, loads (or builds and caches) the index of each layer,
merges the layers and mounts the result on MOUNTPOINT. Nothing is
unpacked: file contents are decompressed from the blobs when read.
REF is any reference "ocifs --help" lists: a layout, an oci-archive or
docker-archive tarball (read in place, never extracted), or a registry
image (docker://HOST[:PORT]/REPO[:TAG|@DIGEST]) whose layers are read
with HTTP range requests as files are read, fetched ranges kept in the
cache (bounded by --cache-max) so no byte is fetched twice. The
registry flags (--creds, --authfile, --cert-dir, --tls-verify) are
skopeo's.

Like sshfs, mount returns once the filesystem is mounted and leaves a
daemon serving it; if anything fails it prints why and exits non-zero,
leaving neither a daemon nor a mount. -f keeps it in the foreground with
logs on stderr; SIGINT or SIGTERM unmount and exit. End a mount with
'ocifs umount MOUNTPOINT' (or umount / fusermount3 -u).

Mounts are always read-only, and nodev,nosuid unless --dev/--suid (or
-o dev,suid) are given: an image from a stranger should not get device
nodes or setuid binaries on this host by being browsed. Without
--allow-other only you can enter the mount, and you can read every file
of the image whatever its owner; with it, the kernel enforces the
image's owners and modes for everyone (default_permissions).

Any user can mount an image they can read: the mount goes through
fusermount3 (package fuse3), and indexes are cached in that user's
$XDG_CACHE_HOME/ocifs.

A read that fails with EIO (a damaged or truncated blob, a digest that
does not match) is logged by the daemon with the file and the reason.
The daemon logs to syslog when one listens on /dev/log, with the tag
"ocifs" (read it with 'journalctl -t ocifs'), and otherwise to
$XDG_STATE_HOME/ocifs/ocifs.log (default ~/.local/state/ocifs/ocifs.log,
kept to a few MiB: older records move to ocifs.log.1). mount says which,
once, on stderr. --log-file FILE logs to FILE instead; --syslog=false
skips syslog.`,
		Example: `  ocifs mount ./layout:latest /mnt/img
  ocifs mount -f --debug oci:./layout:v1 /mnt/img
  ocifs mount --platform linux/arm64 -o allow_other ./layout /mnt/img
  ocifs mount docker-archive:busybox.tar:busybox:latest /mnt/img`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMount(cmd.Context(), args[0], args[1], f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.platform, "platform", "", "image to mount from a multi-platform index, as os/arch[/variant] (default: this machine's)")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "directory of cached layer indexes (default: $OCIFS_CACHE_DIR, else $XDG_CACHE_HOME/ocifs)")
	fl.BoolVar(&f.allowOther, "allow-other", false, "let other users enter the mount, with the image's permissions enforced (non-root: needs user_allow_other in /etc/fuse.conf)")
	fl.BoolVar(&f.dev, "dev", false, "honour device nodes (root only; default nodev)")
	fl.BoolVar(&f.suid, "suid", false, "honour setuid/setgid bits and file capabilities (root only; default nosuid)")
	fl.StringArrayVarP(&f.options, "options", "o", nil, "comma-separated mount options: ro, dev, nodev, suid, nosuid, allow_other, others passed on (rw is refused)")
	fl.BoolVar(&f.debug, "debug", false, "log every FUSE request; implies --foreground unless --log-file is given")
	fl.BoolVarP(&f.foreground, "foreground", "f", false, "stay in the foreground, logging to stderr, until unmounted or interrupted")
	fl.StringVar(&f.logFile, "log-file", "", "append the daemon's log to this file (default: syslog, else $XDG_STATE_HOME/ocifs/ocifs.log)")
	fl.BoolVar(&f.syslog, "syslog", true, "log to syslog/journald (tag ocifs) when /dev/log is there; --syslog=false logs to the state file instead")
	f.cacheMax = sizeFlag(blobcache.DefaultMaxBytes)
	fl.Var(&f.cacheMax, "cache-max", "bound the ranges kept of remote layers to `SIZE` (e.g. 500M, 20G); the least recently used go first")
	f.registry.register(fl)
	return c
}

// mountConfig is a checked mount request.
type mountConfig struct {
	ref  string
	dir  string // absolute
	fs   fs.MountOptions
	open rootfs.Options
}

// parseMount checks the command line; it touches nothing.
func parseMount(ref, dir string, f mountFlags) (mountConfig, error) {
	cfg := mountConfig{
		ref: ref,
		fs: fs.MountOptions{
			FsName:     ref,
			AllowOther: f.allowOther,
			Dev:        f.dev,
			Suid:       f.suid,
			Debug:      f.debug,
		},
		// A mount checks the cached tree as the kernel asks about it:
		// opening then costs the same whatever the image's size.
		open: rootfs.Options{Platform: f.platform, CacheDir: f.cacheDir, LazyTree: true},
	}
	cfg.open.Registry = f.registry.options()
	cfg.open.Registry.Cache = &blobcache.Cache{Dir: cacheDirOr(f.cacheDir), MaxBytes: int64(f.cacheMax)}
	for _, arg := range f.options {
		for o := range strings.SplitSeq(arg, ",") {
			switch {
			case o == "" || o == "ro":
			case o == "rw":
				return cfg, errors.New("mount option rw: ocifs mounts are always read-only")
			case o == "dev":
				cfg.fs.Dev = true
			case o == "nodev":
				cfg.fs.Dev = false
			case o == "suid":
				cfg.fs.Suid = true
			case o == "nosuid":
				cfg.fs.Suid = false
			case o == "allow_other":
				cfg.fs.AllowOther = true
			case strings.HasPrefix(o, "fsname="), strings.HasPrefix(o, "subtype="):
				return cfg, fmt.Errorf("mount option %q: ocifs sets it (the source is the reference, the type fuse.ocifs)", o)
			default:
				cfg.fs.Extra = append(cfg.fs.Extra, o)
			}
		}
	}
	if os.Geteuid() != 0 && (cfg.fs.Dev || cfg.fs.Suid) {
		return cfg, errors.New("mount options dev and suid need root: fusermount3 mounts nodev,nosuid for everyone else")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return cfg, fmt.Errorf("mount point %q: %w", dir, err)
	}
	cfg.dir = abs
	return cfg, nil
}

func runMount(ctx context.Context, ref, dir string, f mountFlags) error {
	cfg, err := parseMount(ref, dir, f)
	if err != nil {
		return err
	}
	if fd, ok := daemonReadyFD(); ok {
		return runDaemon(ctx, cfg, f, fd)
	}
	if err := checkMountPoint(cfg.dir); err != nil {
		return err
	}
	if err := checkFUSE(); err != nil {
		return err
	}
	if f.foreground || (f.debug && f.logFile == "") {
		level := slog.LevelInfo
		if f.debug {
			level = slog.LevelDebug
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
		return serve(ctx, cfg, log, func() {
			log.Info("mounted", "ref", cfg.ref, "dir", cfg.dir)
		})
	}
	return startDaemon(ctx)
}

// checkMountPoint explains what is wrong with dir before anything is
// opened or mounted.
func checkMountPoint(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return fmt.Errorf("mount point %q: no such directory", dir)
	case errors.Is(err, syscall.ENOTCONN):
		return fmt.Errorf("mount point %q: a FUSE mount whose daemon is gone; clear it with 'ocifs umount %s'", dir, dir)
	case err != nil:
		return fmt.Errorf("mount point %q: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("mount point %q: not a directory", dir)
	}
	if m, ok, err := findMount(dir); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("mount point %q: already a mount point (%s from %q); unmount it first", dir, m.FSType, m.Source)
	}
	return nil
}

// checkFUSE explains why this process cannot mount FUSE filesystems,
// if it cannot.
func checkFUSE() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("no /dev/fuse (%w): load the fuse module (modprobe fuse), or run the container with --device /dev/fuse", err)
	}
	if os.Geteuid() == 0 {
		f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("open /dev/fuse: %w (a container needs --device /dev/fuse)", err)
		}
		return f.Close()
	}
	if _, err := fusermount(); err != nil {
		return err
	}
	// fusermount3 opens the device with the caller's rights.
	if err := unix.Access("/dev/fuse", unix.R_OK|unix.W_OK); err != nil {
		return fmt.Errorf("open /dev/fuse: %w: fusermount3 opens it as you; Debian's udev makes it mode 0666 (chmod 0666 /dev/fuse), or mount as root", err)
	}
	return nil
}

// fusermount finds the setuid helper that mounts and unmounts FUSE
// filesystems for users other than root.
func fusermount() (string, error) {
	for _, name := range []string{"fusermount3", "fusermount"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no fusermount3 (or fusermount) in $PATH: users other than root mount FUSE filesystems through it (Debian: apt install fuse3)")
}

// serve opens the image, mounts it, calls ready once the mount answers
// and serves until the mount goes away or a signal asks to unmount.
// daemonGCPercent is the GOGC of a serving mount; see serve.
const daemonGCPercent = 50

func serve(ctx context.Context, cfg mountConfig, log *slog.Logger, ready func()) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	cfg.open.Logger = log
	cfg.open.Registry.Logger = log
	if c := cfg.open.Registry.Cache; c != nil {
		c.Logger = log
	}
	img, err := rootfs.Open(ctx, cfg.ref, cfg.open)
	if err != nil {
		return err
	}
	defer img.Close()

	cfg.fs.Logger = log
	server, err := fs.Mount(cfg.dir, img.Tree, img, cfg.fs)
	if err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		// A mount daemon lives long with a steady live heap (indexes,
		// merged tree, go-fuse nodes) and makes garbage only of
		// request buffers: collecting at +50% instead of +100% keeps
		// its resident size near what it really uses.
		debug.SetGCPercent(daemonGCPercent)
	}
	done := make(chan struct{})
	go func() {
		server.Wait()
		close(done)
	}()
	ready()

	select {
	case <-done:
		log.Info("unmounted", "dir", cfg.dir)
		return nil
	case <-ctx.Done():
	}
	// A second signal now ends the process (and with it any lazily
	// detached mount still in use).
	stop()
	log.Info("signal: unmounting", "dir", cfg.dir)
	if err := unmountPatiently(cfg.dir, log); err != nil {
		return err
	}
	<-done
	return nil
}

// unmountPatiently unmounts dir, retrying for a moment while files are
// still being closed, then detaches it lazily: the mount disappears at
// once, and the kernel ends it (so serve returns) when its last open
// file is closed.
func unmountPatiently(dir string, log *slog.Logger) error {
	delay := 20 * time.Millisecond
	var err error
	for range 5 {
		if err = unmount(dir, false); err == nil {
			return nil
		}
		time.Sleep(delay)
		delay *= 2
	}
	log.Warn("mount busy: detaching it lazily", "dir", dir, "err", err)
	return unmount(dir, true)
}
