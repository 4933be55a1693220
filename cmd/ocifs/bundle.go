package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ocifs/ocifs/bundle"
	"github.com/ocifs/ocifs/image"
	"github.com/ocifs/ocifs/internal/blobcache"
)

func init() { addCommand(newBundleCmd()) }

// bundleFlags are the command line of `ocifs bundle`.
type bundleFlags struct {
	platform string
	cacheDir string
	tty      bool
	writable bool
	rm       bool
	logFile  string
	cacheMax sizeFlag
	registry registryFlags
}

func newBundleCmd() *cobra.Command {
	var f bundleFlags
	c := &cobra.Command{
		Use:   "bundle [flags] REF DIR | bundle --rm DIR",
		Short: "Make an OCI runtime bundle (config.json + lazily mounted rootfs) for runc",
		Long: `bundle makes DIR a runtime bundle of the image REF, ready for
'runc run -b DIR NAME': DIR/config.json is converted from the image config
as the image-spec's conversion.md says (args, env, cwd, user resolved
through the image's own /etc/passwd and /etc/group, annotations, volumes),
with runc spec's defaults for the rest, and the image is mounted at
DIR/rootfs like 'ocifs mount' does, read-only but with device nodes and
setuid binaries honoured, as a container root needs. Nothing is unpacked.

DIR must not exist (its parent must) or be empty. The container's root
is read-only; --writable mounts a kernel overlayfs over the image so the
container can write: the writes land in DIR/.ocifs/upper and the
layout's blobs are never touched.

'ocifs bundle --rm DIR' stops the container's filesystem: it unmounts
the overlay and the image and removes everything bundle created. It
refuses a directory bundle did not make (no DIR/.ocifs/bundle.json).
Delete the container first (runc delete).

bundle needs root: the mount honours devices and setuid, and runc and
overlayfs need it anyway.`,
		Example: `  ocifs bundle ./layout:latest ./b && runc run -b ./b mycontainer
  ocifs bundle --writable --tty oci:./layout:v1 ./b
  ocifs bundle oci-archive:./image.tar:v1 ./b
  ocifs bundle --rm ./b`,
		Args: func(cmd *cobra.Command, args []string) error {
			if f.rm {
				return cobra.ExactArgs(1)(cmd, args)
			}
			return cobra.ExactArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.rm {
				return runBundleRemove(args[0])
			}
			return runBundle(cmd.Context(), args[0], args[1], f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.platform, "platform", "", "image to use from a multi-platform index, as os/arch[/variant] (default: this machine's)")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "directory of cached layer indexes (default: $OCIFS_CACHE_DIR, else $XDG_CACHE_HOME/ocifs)")
	fl.BoolVarP(&f.tty, "tty", "t", false, "give the container a terminal (process.terminal, TERM=xterm)")
	fl.BoolVarP(&f.writable, "writable", "w", false, "put a kernel overlayfs over the image so the container can write (to DIR/.ocifs/upper)")
	fl.BoolVar(&f.rm, "rm", false, "unmount and remove the bundle DIR made by 'ocifs bundle'")
	fl.StringVar(&f.logFile, "log-file", "", "append the mount daemon's log to this file (default: syslog, else $XDG_STATE_HOME/ocifs/ocifs.log, as for ocifs mount)")
	f.cacheMax = sizeFlag(blobcache.DefaultMaxBytes)
	fl.Var(&f.cacheMax, "cache-max", "bound the ranges kept of remote layers to `SIZE` (e.g. 500M, 20G); the least recently used go first")
	f.registry.register(fl)
	return c
}

// runBundle creates the bundle, or, in the mount daemon that
// bundleMounter starts by re-executing this command line, serves it.
func runBundle(ctx context.Context, ref, dir string, f bundleFlags) error {
	target, err := bundleMountPoint(dir, f.writable)
	if err != nil {
		return err
	}
	if fd, ok := daemonReadyFD(); ok {
		cfg, err := parseMount(ref, target, bundleMountFlags(f))
		if err != nil {
			return err
		}
		return runDaemon(ctx, cfg, bundleMountFlags(f), fd)
	}
	if os.Geteuid() != 0 {
		return errors.New("bundle: needs root (a container root needs device nodes and setuid, which FUSE grants only to root; runc and overlayfs need root too)")
	}
	err = bundle.Create(ctx, ref, dir, bundle.CreateOptions{
		Platform: f.platform,
		CacheDir: f.cacheDir,
		Registry: f.registryOptions(),
		TTY:      f.tty,
		Writable: f.writable,
		Mounter:  bundleMounter{target: target},
	})
	if errors.Is(err, bundle.ErrMissingMountPoint) {
		return fmt.Errorf("%w; with --writable runc can create it", err)
	}
	return err
}

// registryOptions are the registry flags, reading through the cache
// of fetched ranges.
func (f bundleFlags) registryOptions() image.RegistryOptions {
	ro := f.registry.options()
	ro.Cache = &blobcache.Cache{Dir: cacheDirOr(f.cacheDir), MaxBytes: int64(f.cacheMax)}
	return ro
}

func runBundleRemove(dir string) error {
	return bundle.Remove(dir, bundle.RemoveOptions{Mounter: bundleMounter{}})
}

// bundleMountFlags are the `ocifs mount` flags of a bundle's image
// mount: devices and setuid honoured (a container root needs them) and
// open to every user, with the image's owners and modes enforced by
// the kernel, since the container's user is rarely root.
func bundleMountFlags(f bundleFlags) mountFlags {
	return mountFlags{
		platform:   f.platform,
		cacheDir:   f.cacheDir,
		cacheMax:   f.cacheMax,
		registry:   f.registry,
		allowOther: true,
		dev:        true,
		suid:       true,
		logFile:    f.logFile,
		syslog:     true, // as ocifs mount: see daemonlog.go
	}
}

// bundleMountPoint is where the image is mounted in the bundle dir:
// rootfs, or the overlay's lower directory. The daemon, re-executed
// with the same command line, computes the same path.
func bundleMountPoint(dir string, writable bool) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("bundle %q: %w", dir, err)
	}
	return filepath.Join(abs, filepath.FromSlash(bundle.ImageMountPath(writable))), nil
}

// bundleMounter mounts the image with `ocifs mount`'s daemon: the
// command line is executed again as the daemon (startDaemon), which
// runBundle turns into runDaemon for target.
type bundleMounter struct {
	target string // where the daemon will mount
}

func (m bundleMounter) Mount(ctx context.Context, dir string) error {
	if !samePath(dir, m.target) {
		// Create and the daemon disagree on the mount point: a bug.
		return fmt.Errorf("mount %q: the mount daemon would mount %q", dir, m.target)
	}
	return startDaemon(ctx)
}

func (m bundleMounter) Unmount(dir string) error {
	return unmountPatiently(dir, slog.New(slog.DiscardHandler))
}

// samePath reports whether a and b name the same directory.
func samePath(a, b string) bool {
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}
