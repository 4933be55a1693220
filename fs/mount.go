package fs

import (
	"fmt"
	"log/slog"
	"os"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ocifs/ocifs/overlay"
)

// DefaultName is the filesystem subtype: mounts show as "fuse.ocifs".
const DefaultName = "ocifs"

// MountOptions tunes Mount. The zero value works.
type MountOptions struct {
	// Options tune the node tree: logger and cache timeouts. The
	// logger also receives go-fuse's own messages (and, with Debug,
	// every request).
	Options

	// FsName is the mount's source in /proc/mounts and df: the image
	// reference. Empty means Name.
	FsName string

	// Name is the subtype, shown as the type "fuse.<Name>". Empty
	// means DefaultName.
	Name string

	// AllowOther lets other users reach the mount (allow_other; an
	// unprivileged user needs user_allow_other in /etc/fuse.conf).
	// It turns on default_permissions: with many users the kernel
	// must enforce the image's owners and modes.
	AllowOther bool

	// Dev honours device nodes and Suid setuid/setgid bits and file
	// capabilities; by default the mount is nodev,nosuid.
	Dev, Suid bool

	// Extra are further mount options, as for -o (e.g. "noexec",
	// "allow_root"), passed to the kernel or fusermount3 as they are.
	Extra []string

	// Debug logs every FUSE request and reply at debug level.
	Debug bool
}

// Mount mounts t read-only on dir, with file contents from content,
// and serves it in the background until the mount goes away (see
// fuse.Server Wait and Unmount). As root it calls mount(2) itself;
// otherwise go-fuse runs fusermount3 (or fusermount), which must be
// installed setuid root, as for any FUSE filesystem.
func Mount(dir string, t *overlay.Tree, content Content, opts MountOptions) (*fuse.Server, error) {
	return mount(dir, t, content, opts)
}

func mount(dir string, t tree, content Content, opts MountOptions) (*fuse.Server, error) {
	root := newRoot(t, content, opts.Options)
	fo := fuseOptions(t, root.fsys, opts, os.Geteuid() == 0)
	raw := &noOpendir{RawFileSystem: fusefs.NewNodeFS(root, fo)}
	server, err := fuse.NewServer(raw, dir, &fo.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("mount %q: %w", dir, err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		// The serve loop ends by itself: nothing is mounted.
		return nil, fmt.Errorf("mount %q: %w", dir, err)
	}
	return server, nil
}

// fuseOptions translates opts for go-fuse. direct selects mounting with
// mount(2) (root) over fusermount3 (everyone else).
func fuseOptions(t tree, fsys *filesystem, opts MountOptions, direct bool) *fusefs.Options {
	name := opts.Name
	if name == "" {
		name = DefaultName
	}
	fsName := opts.FsName
	if fsName == "" {
		fsName = name
	}
	entry, attr := fsys.entryTimeout, fsys.attrTimeout
	mo := fuse.MountOptions{
		FsName:     fsName,
		Name:       name,
		AllowOther: opts.AllowOther,
		Debug:      opts.Debug,
		Logger:     slog.NewLogLogger(fsys.log.Handler(), slog.LevelDebug),

		// The image has no xattrs: answer the first request ENOSYS
		// and the kernel stops asking for the whole mount.
		DisableXAttrs: !t.HasXattrs(),
		// Contents and targets never change: let the kernel keep
		// symlink targets, and never drop pages because attributes
		// were refreshed.
		EnableSymlinkCaching:     true,
		ExplicitDataCacheControl: true,
		// Reads answer with bytes in memory, never a file descriptor
		// to splice from. Without this go-fuse still tries: every
		// READ reply costs a pipe from its pool, the header written
		// into it and drained again, before the plain writev.
		DisableSplice: true,
	}

	flags := uintptr(syscall.MS_RDONLY)
	var o []string
	if opts.Dev {
		o = append(o, "dev")
	} else {
		o = append(o, "nodev")
		flags |= syscall.MS_NODEV
	}
	if opts.Suid {
		o = append(o, "suid")
	} else {
		o = append(o, "nosuid")
		flags |= syscall.MS_NOSUID
	}
	if opts.AllowOther {
		o = append(o, "default_permissions")
	}
	if direct {
		// mount(2) takes ro as the MS_RDONLY flag (go-fuse moves
		// dev/suid/exec strings into flags itself). Strict: a
		// fallback to fusermount3 would run without our flags.
		mo.DirectMountStrict = true
		mo.DirectMountFlags = flags
	} else {
		o = append([]string{"ro"}, o...)
	}
	mo.Options = append(o, opts.Extra...)

	return &fusefs.Options{
		MountOptions:    mo,
		EntryTimeout:    &entry,
		AttrTimeout:     &attr,
		NegativeTimeout: &entry,
		// Mode 0 is a real mode in images (e.g. /etc/shadow on
		// some distributions); go-fuse would make it 0644.
		NullPermissions: true,
		RootStableAttr:  &fusefs.StableAttr{Ino: t.Root().ID},
		Logger:          slog.NewLogLogger(fsys.log.Handler(), slog.LevelWarn),
	}
}
