package bundle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/image"
	"github.com/ocifs/ocifs/overlay"
	"github.com/ocifs/ocifs/rootfs"
)

// Errors Create and Remove wrap.
var (
	ErrNotEmpty     = errors.New("bundle: directory exists and is not empty")
	ErrNotBundle    = errors.New("bundle: not a bundle made by ocifs (no " + StateDir + "/" + MarkerName + ")")
	ErrBadMarker    = errors.New("bundle: invalid " + MarkerName)
	ErrStillMounted = errors.New("bundle: still mounted")
	ErrOverlayPath  = errors.New("bundle: path unusable in overlayfs options")
	// ErrMissingMountPoint: a read-only bundle needs the image to
	// have every mount point; a writable one can create them.
	ErrMissingMountPoint = errors.New("bundle: mount point missing from the image (a read-only root cannot get one)")
)

// The names Create makes inside a bundle directory.
const (
	ConfigName = "config.json"
	// StateDir holds the marker and, for a writable bundle, the
	// overlay's lower, upper and work directories.
	StateDir   = ".ocifs"
	MarkerName = "bundle.json"
	lowerDir   = StateDir + "/lower"
	upperDir   = StateDir + "/upper"
	workDir    = StateDir + "/work"
	markerPath = StateDir + "/" + MarkerName
)

// Mount types recorded in the marker.
const (
	MountFUSE    = "fuse"
	MountOverlay = "overlay"
)

// markerVersion is the Marker format this code writes and reads.
const markerVersion = 1

// knownPaths are the only paths a marker may list: Remove deletes what
// the marker lists, so a marker edited by someone else must not be able
// to name anything else.
var knownPaths = []string{ConfigName, RootfsDir, StateDir, markerPath, lowerDir, upperDir, workDir}

// Marker is DIR/.ocifs/bundle.json: what Create made, so that Remove
// undoes exactly that. It is written before anything is mounted, so a
// bundle interrupted half way can still be removed.
type Marker struct {
	Version  int    `json:"version"`
	Ref      string `json:"ref"`
	Writable bool   `json:"writable"`
	// CreatedDir: DIR itself did not exist; Remove removes it too.
	CreatedDir bool `json:"createdDir"`
	// Paths are the names Create makes in DIR, relative, in the
	// order it makes them; Remove deletes them in reverse.
	Paths []string `json:"paths"`
	// Mounts are the mounts Create makes, in order; Remove unmounts
	// them in reverse.
	Mounts []MountRecord `json:"mounts"`
}

// MountRecord is one mount of a bundle.
type MountRecord struct {
	Path string `json:"path"` // relative to DIR
	Type string `json:"type"` // MountFUSE or MountOverlay
}

// Mounter mounts and unmounts the image's lazy filesystem; the CLI
// implements it with the machinery of `ocifs mount`, so that the
// filesystem outlives the command that made the bundle.
type Mounter interface {
	// Mount mounts the image on dir, read-only, with device nodes
	// and setuid honoured and open to every user (allow_other,
	// default_permissions), returning once the mount is up.
	Mount(ctx context.Context, dir string) error
	// Unmount unmounts dir.
	Unmount(dir string) error
}

// CreateOptions tunes Create. Mounter is required.
type CreateOptions struct {
	Platform string // "os/arch[/variant]"; empty means the host's
	CacheDir string // index cache; empty means the default
	// Registry tunes how a docker:// reference is read.
	Registry image.RegistryOptions
	TTY      bool // see Options.TTY
	Writable bool // a kernel overlayfs over the image, upper and work in DIR/.ocifs
	Mounter  Mounter
	Logger   *slog.Logger // nil discards
}

// Create makes dir a runtime bundle of the image ref: dir/config.json
// converted from the image config, and the image mounted at
// dir/rootfs. dir must be missing (its parent must exist) or an empty
// directory. On error nothing Create made is left, mounted or not.
func Create(ctx context.Context, ref, dir string, opts CreateOptions) error {
	if opts.Mounter == nil {
		return errors.New("create bundle: no Mounter")
	}
	dir, exists, err := checkDir(dir)
	if err != nil {
		return err
	}
	// Convert first: an image that cannot run leaves nothing behind.
	spec, err := convert(ctx, ref, opts)
	if err != nil {
		return err
	}
	config, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return fmt.Errorf("encode %s: %w", ConfigName, err)
	}
	config = append(config, '\n')

	return create(ctx, plan{dir: dir, exists: exists, marker: newMarker(ref, opts), config: config}, opts)
}

// plan is what create makes.
type plan struct {
	dir    string // absolute, without symlinks once it exists
	exists bool   // dir exists (and is empty)
	marker *Marker
	config []byte // config.json
}

// ImageMountPath is where Create has the Mounter mount the image,
// relative to the bundle directory: rootfs itself, or the overlay's
// lower directory when the bundle is writable.
func ImageMountPath(writable bool) string {
	if writable {
		return lowerDir
	}
	return RootfsDir
}

// newMarker plans a bundle: the paths and mounts Create makes.
func newMarker(ref string, opts CreateOptions) *Marker {
	m := &Marker{Version: markerVersion, Ref: ref, Writable: opts.Writable}
	m.Paths = []string{StateDir, markerPath, RootfsDir}
	if opts.Writable {
		m.Paths = append(m.Paths, lowerDir, upperDir, workDir)
		m.Mounts = []MountRecord{{ImageMountPath(true), MountFUSE}, {RootfsDir, MountOverlay}}
	} else {
		m.Mounts = []MountRecord{{ImageMountPath(false), MountFUSE}}
	}
	m.Paths = append(m.Paths, ConfigName)
	return m
}

// create carries out l's plan, and undoes it on error.
func create(ctx context.Context, l plan, opts CreateOptions) (err error) {
	dir, m := l.dir, l.marker
	m.CreatedDir = !l.exists
	if !l.exists {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("create bundle %q: %w", dir, err)
		}
		// The path may have had symlinks in its parent; mountinfo
		// shows mount points without them.
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			os.Remove(dir)
			return fmt.Errorf("create bundle %q: %w", dir, err)
		}
		dir = real
	}
	// A second Create racing for the same directory fails here.
	if err := os.Mkdir(filepath.Join(dir, StateDir), 0o700); err != nil {
		if !l.exists {
			os.Remove(dir)
		}
		return fmt.Errorf("create bundle %q: %w", dir, err)
	}
	defer func() {
		if err != nil {
			if terr := teardown(dir, m, opts.Mounter, logger(opts.Logger)); terr != nil {
				err = errors.Join(err, fmt.Errorf("clean up bundle %q: %w", dir, terr))
			}
		}
	}()
	if err := writeMarker(dir, m); err != nil {
		return err
	}
	for _, p := range m.Paths {
		if p == StateDir || p == markerPath || p == ConfigName {
			continue
		}
		if err := os.Mkdir(filepath.Join(dir, p), 0o755); err != nil {
			return fmt.Errorf("create bundle: %w", err)
		}
	}
	for _, mnt := range m.Mounts {
		target := filepath.Join(dir, mnt.Path)
		switch mnt.Type {
		case MountFUSE:
			err = opts.Mounter.Mount(ctx, target)
		case MountOverlay:
			err = mountOverlay(filepath.Join(dir, lowerDir), filepath.Join(dir, upperDir), filepath.Join(dir, workDir), target)
		}
		if err != nil {
			return fmt.Errorf("create bundle: %w", err)
		}
	}
	if err := writeNew(filepath.Join(dir, ConfigName), l.config, 0o644); err != nil {
		return fmt.Errorf("create bundle: %w", err)
	}
	return nil
}

// RemoveOptions tunes Remove. Mounter is required.
type RemoveOptions struct {
	Mounter Mounter
	Logger  *slog.Logger // nil discards
}

// Remove undoes Create: it unmounts what the bundle in dir mounted
// (the overlay, then the image) and removes what Create made. A
// directory without Create's marker is refused. Nothing is deleted
// while anything below dir is still mounted.
func Remove(dir string, opts RemoveOptions) error {
	if opts.Mounter == nil {
		return errors.New("remove bundle: no Mounter")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("remove bundle %q: %w", dir, err)
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return fmt.Errorf("remove bundle %q: %w", dir, err)
	}
	m, err := readMarker(abs)
	if err != nil {
		return fmt.Errorf("remove bundle %q: %w", dir, err)
	}
	if err := teardown(abs, m, opts.Mounter, logger(opts.Logger)); err != nil {
		return fmt.Errorf("remove bundle %q: %w", dir, err)
	}
	return nil
}

// checkDir makes dir absolute and checks that it is an empty directory
// or missing; it reports which.
func checkDir(dir string) (string, bool, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false, fmt.Errorf("create bundle %q: %w", dir, err)
	}
	entries, err := os.ReadDir(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// os.Mkdir reports a missing parent later; a dangling symlink
		// at abs is refused there too.
		return abs, false, nil
	case err != nil:
		return "", false, fmt.Errorf("create bundle %q: %w", dir, err)
	case len(entries) > 0:
		return "", false, fmt.Errorf("create bundle %q: %w", dir, ErrNotEmpty)
	}
	// Compare mount points without symlinks in the way.
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return "", false, fmt.Errorf("create bundle %q: %w", dir, err)
	}
	return abs, true, nil
}

// convert reads the image config and, through the layer indexes, the
// image's /etc/passwd and /etc/group, and converts.
func convert(ctx context.Context, ref string, opts CreateOptions) (*specs.Spec, error) {
	r, err := rootfs.Open(ctx, ref, rootfs.Options{Platform: opts.Platform, CacheDir: opts.CacheDir, Registry: opts.Registry, Logger: opts.Logger})
	if err != nil {
		return nil, err // rootfs says which layout and image
	}
	defer r.Close()
	files := TreeFiles{Tree: r.Tree, Content: r}
	spec, err := RuntimeConfig(r.Image.Config, files, Options{TTY: opts.TTY, Writable: opts.Writable})
	if err != nil {
		return nil, fmt.Errorf("convert %q: %w", ref, err)
	}
	if !opts.Writable {
		if err := checkMountPoints(spec, files); err != nil {
			return nil, fmt.Errorf("convert %q: %w", ref, err)
		}
	}
	return spec, nil
}

// checkMountPoints checks that every mount of spec has its directory
// in the image. runc creates missing mount points, which a read-only
// root cannot hold: images built FROM scratch often lack /proc, /dev
// and /sys. A mount inside another one (/dev/pts in the /dev tmpfs)
// needs nothing from the image.
func checkMountPoints(spec *specs.Spec, files TreeFiles) error {
	var outer []string
	for _, m := range spec.Mounts {
		d := path.Clean(m.Destination)
		if slices.ContainsFunc(outer, func(o string) bool { return strings.HasPrefix(d, strings.TrimSuffix(o, "/")+"/") }) {
			continue
		}
		outer = append(outer, d)
		n, err := files.resolve(d)
		if err == nil && n.IsDir() {
			continue
		}
		if err == nil {
			err = overlay.ErrNotDir
		}
		return fmt.Errorf("check mount point %q: %w: %w", d, ErrMissingMountPoint, err)
	}
	return nil
}

// teardown unmounts m's mounts that are still mounted, newest first,
// then removes m's paths, newest first. It stops before removing
// anything if a mount remains below dir: os.RemoveAll on a mounted
// overlay would delete through it.
func teardown(dir string, m *Marker, mounter Mounter, log *slog.Logger) error {
	for i := len(m.Mounts) - 1; i >= 0; i-- {
		target := filepath.Join(dir, m.Mounts[i].Path)
		mounted, err := isMountPoint(target)
		if err != nil {
			return err
		}
		if !mounted {
			continue
		}
		switch m.Mounts[i].Type {
		case MountOverlay:
			err = unmountOverlay(target)
		default:
			err = mounter.Unmount(target)
		}
		if err != nil {
			return err
		}
		log.Debug("unmounted", "path", target, "type", m.Mounts[i].Type)
	}
	left, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("remove %q: %w: %s", dir, ErrStillMounted, strings.Join(left, ", "))
	}
	for i := len(m.Paths) - 1; i >= 0; i-- {
		p := m.Paths[i]
		full := filepath.Join(dir, p)
		var err error
		if p == upperDir || p == workDir {
			// What the container wrote. overlayfs leaves a work/work
			// directory with mode 0; RemoveAll copes as root.
			err = os.RemoveAll(full)
		} else {
			err = os.Remove(full)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %q: %w", full, err)
		}
	}
	if m.CreatedDir {
		err := os.Remove(dir)
		switch {
		case errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST):
			// Someone put files there; they are not ours to delete.
			log.Info("bundle directory kept: it holds files ocifs did not create", "dir", dir)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("remove %q: %w", dir, err)
		}
	}
	return nil
}

// mountOverlay mounts a kernel overlayfs on target. overlayfs splits
// its options at "," and lowerdir at ":", so paths holding those (or
// the "\" that would escape them) are refused rather than misread.
func mountOverlay(lower, upper, work, target string) error {
	for _, p := range []string{lower, upper, work} {
		if strings.ContainsAny(p, `,:\`) {
			return fmt.Errorf("mount overlay on %q: %q: %w", target, p, ErrOverlayPath)
		}
	}
	data := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
		return fmt.Errorf("mount overlay on %q: %w", target, err)
	}
	return nil
}

func unmountOverlay(target string) error {
	if err := unix.Unmount(target, 0); err != nil {
		return fmt.Errorf("unmount overlay %q: %w", target, err)
	}
	return nil
}

func writeMarker(dir string, m *Marker) error {
	data, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return fmt.Errorf("encode %s: %w", MarkerName, err)
	}
	return writeNew(filepath.Join(dir, markerPath), append(data, '\n'), 0o644)
}

// readMarker reads and checks dir's marker.
func readMarker(dir string) (*Marker, error) {
	p := filepath.Join(dir, markerPath)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotBundle
	}
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", p, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > 1<<20 {
		return nil, fmt.Errorf("read %q: %w: not a small regular file", p, ErrBadMarker)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", p, err)
	}
	var m Marker
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decode %q: %w: %w", p, ErrBadMarker, err)
	}
	if m.Version != markerVersion {
		return nil, fmt.Errorf("decode %q: %w: version %d", p, ErrBadMarker, m.Version)
	}
	for _, q := range m.Paths {
		if !slices.Contains(knownPaths, q) {
			return nil, fmt.Errorf("decode %q: %w: path %q", p, ErrBadMarker, q)
		}
	}
	for _, mnt := range m.Mounts {
		if !slices.Contains(knownPaths, mnt.Path) || (mnt.Type != MountFUSE && mnt.Type != MountOverlay) {
			return nil, fmt.Errorf("decode %q: %w: mount %+v", p, ErrBadMarker, mnt)
		}
	}
	return &m, nil
}

// writeNew writes a file that must not exist yet.
func writeNew(name string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %q: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %q: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %q: %w", name, err)
	}
	return nil
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
