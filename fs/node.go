package fs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/overlay"
	"github.com/ocifs/ocifs/tarindex"
)

// Content serves the bytes of regular files. It must be safe for
// concurrent use. *rootfs.RootFS satisfies it.
type Content interface {
	// ReadAt reads len(p) bytes of n's contents at off, like
	// io.ReaderAt.ReadAt.
	ReadAt(n *overlay.Node, p []byte, off int64) (int, error)
}

// DefaultTimeout is how long the kernel may cache entries, attributes
// and failed lookups when Options leave the timeouts zero. The image
// never changes under a mount, so only memory pressure should make the
// kernel forget.
const DefaultTimeout = time.Hour

// Options tunes the node tree. The zero value works.
type Options struct {
	// Logger receives errors that reach the kernel as EIO, each
	// distinct one once. Nil discards.
	Logger *slog.Logger

	// EntryTimeout is how long the kernel caches names, found or not;
	// zero means DefaultTimeout.
	EntryTimeout time.Duration

	// AttrTimeout is how long the kernel caches attributes; zero
	// means DefaultTimeout.
	AttrTimeout time.Duration
}

func (o Options) entryTimeout() time.Duration {
	if o.EntryTimeout > 0 {
		return o.EntryTimeout
	}
	return DefaultTimeout
}

func (o Options) attrTimeout() time.Duration {
	if o.AttrTimeout > 0 {
		return o.AttrTimeout
	}
	return DefaultTimeout
}

// tree is what fs needs of an overlay.Tree: the Checked methods, since
// a lazily checked tree (overlay.DecodeLazy) reports damage as it
// meets it, which fs answers with EIO.
type tree interface {
	Root() *overlay.Node
	NodeChecked(id uint64) (*overlay.Node, error)
	LookupChecked(dir *overlay.Node, name string) (*overlay.Node, error)
	ReadDirChecked(dir *overlay.Node) ([]overlay.DirEntry, error)
	HasXattrs() bool
}

var _ tree = (*overlay.Tree)(nil)

// filesystem is what every node of one tree shares.
type filesystem struct {
	tree         tree
	content      Content
	log          *slog.Logger
	entryTimeout time.Duration
	attrTimeout  time.Duration
	hasXattrs    bool // cached: asked on every xattr request
	errs         errorLog

	statOnce sync.Once
	stat     totals
}

// node is one inode of the mount: an overlay node the kernel has asked
// about. Hardlinked names share one node.
//
// It keeps only the overlay node's ID and decodes the node from the
// tree when a request needs it (a few hundred nanoseconds, against tens
// of microseconds for the FUSE round trip): after a walk of the whole
// image the kernel holds an inode for every file, and so do we, so
// every byte kept here is paid once per file of the image. The file
// type, which most requests check first, is in the Inode's StableAttr.
type node struct {
	fusefs.Inode
	fsys *filesystem
	id   uint64
}

// node decodes the overlay node this inode serves, for op: EIO (and a
// log line) if the tree finds it damaged.
func (n *node) node(op string) (*overlay.Node, syscall.Errno) {
	o, err := n.fsys.tree.NodeChecked(n.id)
	if err == nil && o == nil {
		// IDs come from the tree itself, so this cannot happen.
		err = fmt.Errorf("node %d: not in the tree", n.id)
	}
	if err != nil {
		return nil, n.fsys.errno(op, nil, err)
	}
	return o, 0
}

// NewRoot returns the root of a node tree serving t with file contents
// from content, for fusefs.Mount or fusefs.NewNodeFS. Mount is the
// usual way in; NewRoot is for callers that set up go-fuse themselves
// (tests, mostly), who should set fusefs.Options.NullPermissions so
// that mode 0 survives, and NegativeTimeout to cache failed lookups.
func NewRoot(t *overlay.Tree, content Content, opts Options) fusefs.InodeEmbedder {
	return newRoot(t, content, opts)
}

func newRoot(t tree, content Content, opts Options) *node {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fsys := &filesystem{
		tree:         t,
		content:      content,
		log:          log,
		entryTimeout: opts.entryTimeout(),
		attrTimeout:  opts.attrTimeout(),
		hasXattrs:    t.HasXattrs(),
	}
	return &node{fsys: fsys, id: t.Root().ID}
}

// newChild returns the inode of child, making one if the kernel has not
// seen child yet. NewInode deduplicates on the inode number, so
// concurrent lookups and hardlinks end up with one inode.
func (n *node) newChild(ctx context.Context, child *overlay.Node) *fusefs.Inode {
	ops := &node{fsys: n.fsys, id: child.ID}
	return n.NewInode(ctx, ops, fusefs.StableAttr{Mode: fileType(child.Entry), Ino: child.ID})
}

// fileType returns the S_IF* bits of an entry. A nil entry is a
// directory the merge made up because no layer lists it. TypeLink
// never reaches here as such (the overlay resolves hardlinks to their
// target) but reads as the regular file it names.
func fileType(e *tarindex.Entry) uint32 {
	if e == nil {
		return syscall.S_IFDIR
	}
	switch e.Type {
	case tar.TypeDir:
		return syscall.S_IFDIR
	case tar.TypeSymlink:
		return syscall.S_IFLNK
	case tar.TypeChar:
		return syscall.S_IFCHR
	case tar.TypeBlock:
		return syscall.S_IFBLK
	case tar.TypeFifo:
		return syscall.S_IFIFO
	default:
		return syscall.S_IFREG
	}
}

// blockSize is st_blksize: the unit in which reads are worth making.
const blockSize = 4096

// fillAttr sets out from an overlay node.
func fillAttr(n *overlay.Node, out *fuse.Attr) {
	out.Ino = n.ID
	out.Nlink = n.Nlink
	out.Blksize = blockSize
	e := n.Entry
	if e == nil {
		// A directory only implied by its children's paths: what
		// umoci and containerd create for it when unpacking.
		out.Mode = syscall.S_IFDIR | 0o755
		return
	}
	typ := fileType(e)
	out.Mode = typ | e.Mode&0o7777
	out.Uid = uint32(e.UID)
	out.Gid = uint32(e.GID)
	switch typ {
	case syscall.S_IFREG:
		out.Size = uint64(e.Size)
	case syscall.S_IFLNK:
		out.Size = uint64(len(e.Linkname))
		// Linux symlinks have no permissions of their own: lstat
		// always shows 0777, whatever the tar header said.
		out.Mode = typ | 0o777
	case syscall.S_IFCHR, syscall.S_IFBLK:
		// The kernel decodes FUSE's 32-bit rdev with new_decode_dev,
		// whose layout is the low half of glibc's makedev.
		out.Rdev = uint32(unix.Mkdev(e.Devmajor, e.Devminor))
	}
	out.Blocks = (dataBytes(e, out.Size) + 511) / 512
	// FUSE's times are a 64-bit second count (read as signed by the
	// kernel) and nanoseconds in [0, 1e9), as the Entry keeps them.
	sec, nsec := uint64(e.Mtime), e.MtimeNsec
	out.Atime, out.Mtime, out.Ctime = sec, sec, sec
	out.Atimensec, out.Mtimensec, out.Ctimensec = nsec, nsec, nsec
}

// dataBytes is how much of a file is data, which st_blocks counts: a
// sparse file's holes take no room (du shows the data, cp and tar
// look for holes when st_blocks is short of the size), everything else
// is all data.
func dataBytes(e *tarindex.Entry, size uint64) uint64 {
	if e == nil || e.Sparse == nil || fileType(e) != syscall.S_IFREG {
		return size
	}
	var n uint64
	for _, r := range e.Sparse {
		n += uint64(r.Length)
	}
	return n
}

// fileMode is the inode's S_IF* type. go-fuse gives the root S_IFDIR.
func (n *node) fileMode() uint32 { return n.StableAttr().Mode & syscall.S_IFMT }

func (n *node) isDir() bool     { return n.fileMode() == syscall.S_IFDIR }
func (n *node) isRegular() bool { return n.fileMode() == syscall.S_IFREG }

var _ = (fusefs.NodeLookuper)((*node)(nil))

// Lookup finds a child in the merged tree by binary search and makes
// its inode. Failed lookups are cached by the kernel through the
// NegativeTimeout that Mount sets.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	dir, errno := n.node("lookup")
	if errno != 0 {
		return nil, errno
	}
	child, err := n.fsys.tree.LookupChecked(dir, name)
	if err != nil {
		return nil, n.fsys.errno("lookup", dir, err)
	}
	if child == nil {
		return nil, syscall.ENOENT
	}
	fillAttr(child, &out.Attr)
	out.SetEntryTimeout(n.fsys.entryTimeout)
	out.SetAttrTimeout(n.fsys.attrTimeout)
	return n.newChild(ctx, child), 0
}

var _ = (fusefs.NodeGetattrer)((*node)(nil))

// Getattr reports the entry's metadata.
func (n *node) Getattr(ctx context.Context, f fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	o, errno := n.node("getattr")
	if errno != 0 {
		return errno
	}
	fillAttr(o, &out.Attr)
	out.SetTimeout(n.fsys.attrTimeout)
	return 0
}

var _ = (fusefs.NodeAccesser)((*node)(nil))

// Access answers access(2) and chdir when the mount has no
// default_permissions, that is when only the mounting user can reach
// it: that user may read and search everything, as in a copy they
// unpacked themselves. Execute still needs an x bit, and writing is
// never possible.
func (n *node) Access(ctx context.Context, mask uint32) syscall.Errno {
	if mask&unix.W_OK != 0 {
		return syscall.EROFS
	}
	if mask&unix.X_OK != 0 && !n.isDir() {
		o, errno := n.node("access")
		if errno != 0 {
			return errno
		}
		if e := o.Entry; e == nil || e.Mode&0o111 == 0 {
			return syscall.EACCES
		}
	}
	return 0
}

// maxNameLen is NAME_MAX, the longest name the kernel looks up.
const maxNameLen = 255

var _ = (fusefs.NodeReaddirer)((*node)(nil))

// Readdir lists the directory from the merged tree, "." and ".."
// first as real filesystems do. The kernel asks once per directory and
// keeps the listing (see noOpendir); it fills in attributes with
// READDIRPLUS, which go-fuse answers through Lookup. Names longer than
// NAME_MAX (255 bytes) are left out: the kernel refuses to look them
// up, and one longer than FUSE_NAME_MAX (1024) would make it fail the
// whole listing with EIO.
func (n *node) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	if !n.isDir() {
		return nil, syscall.ENOTDIR
	}
	dir, errno := n.node("readdir")
	if errno != 0 {
		return nil, errno
	}
	children, err := n.fsys.tree.ReadDirChecked(dir)
	if err != nil {
		return nil, n.fsys.errno("readdir", dir, err)
	}
	parent := n.id
	if _, p := n.Parent(); p != nil {
		parent = p.StableAttr().Ino
	}
	list := make([]fuse.DirEntry, 0, len(children)+2)
	list = append(list,
		fuse.DirEntry{Name: ".", Ino: n.id, Mode: syscall.S_IFDIR},
		fuse.DirEntry{Name: "..", Ino: parent, Mode: syscall.S_IFDIR})
	for _, c := range children {
		if len(c.Name) > maxNameLen {
			continue
		}
		list = append(list, fuse.DirEntry{Name: c.Name, Ino: c.Node.ID, Mode: fileType(c.Node.Entry)})
	}
	return fusefs.NewListDirStream(list), 0
}

var _ = (fusefs.NodeOpener)((*node)(nil))

// Open allows reading only, and answers a read-only open of a regular
// file with ENOSYS: the kernel then stops sending OPEN and RELEASE for
// this mount altogether (FUSE_NO_OPEN_SUPPORT) and opens files itself,
// keeping their page cache across opens (FOPEN_KEEP_CACHE), which is
// right for contents that never change. That halves the requests of a
// tree walk that opens every file. Write opens never reach us again
// either way: the mount is read-only, and the VFS refuses them.
func (n *node) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	if !n.isRegular() {
		// Devices and fifos are opened by the kernel itself;
		// directories go through OpendirHandle.
		return nil, 0, syscall.EISDIR
	}
	return nil, 0, syscall.ENOSYS
}

var _ = (fusefs.NodeFlusher)((*node)(nil))

// Flush answers ENOSYS: nothing is ever written back, and the kernel
// then stops sending FLUSH on every close(2).
func (n *node) Flush(ctx context.Context, f fusefs.FileHandle) syscall.Errno {
	return syscall.ENOSYS
}

var _ = (fusefs.NodeReader)((*node)(nil))

// Read serves bytes from Content into the kernel's buffer, clipped to
// the file size.
func (n *node) Read(ctx context.Context, f fusefs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if !n.isRegular() {
		return nil, syscall.EISDIR
	}
	o, errno := n.node("read")
	if errno != 0 {
		return nil, errno
	}
	size := o.Entry.Size
	if off < 0 {
		return nil, syscall.EINVAL
	}
	if off >= size {
		return fuse.ReadResultData(nil), 0
	}
	if rest := size - off; int64(len(dest)) > rest {
		dest = dest[:rest]
	}
	got, err := n.fsys.content.ReadAt(o, dest, off)
	if got == len(dest) && (err == nil || errors.Is(err, io.EOF)) {
		return fuse.ReadResultData(dest), 0
	}
	if err == nil || errors.Is(err, io.EOF) {
		// The index promised size bytes: running out early means
		// the blob does not hold what it should.
		err = io.ErrUnexpectedEOF
	}
	return nil, n.fsys.errno("read", o, err)
}

var _ = (fusefs.NodeLseeker)((*node)(nil))

// Lseek answers SEEK_DATA and SEEK_HOLE (the only whences the kernel
// sends; it does SEEK_SET, SEEK_CUR and SEEK_END itself) from a sparse
// file's map, so cp, tar and rsync copy only its data. Other files are
// all data with the one hole every file has, at EOF. As on local
// filesystems, an offset at or past EOF is ENXIO, and so is SEEK_DATA
// in the hole that ends a file.
//
// The kernel opens files itself on this mount (see Open), so LSEEK
// comes with no file handle: go-fuse's bridge asks the node, never a
// FileLseeker.
func (n *node) Lseek(ctx context.Context, f fusefs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	if !n.isRegular() {
		return 0, syscall.EINVAL
	}
	o, errno := n.node("lseek")
	if errno != 0 {
		return 0, errno
	}
	size := uint64(o.Entry.Size)
	if off >= size {
		return 0, syscall.ENXIO
	}
	regs := o.Entry.Sparse
	// The first region that ends past off: regions are sorted and
	// do not overlap (tarindex checks at index time).
	i := sort.Search(len(regs), func(i int) bool { return uint64(regs[i].Offset+regs[i].Length) > off })
	switch whence {
	case unix.SEEK_DATA:
		switch {
		case regs == nil:
			return off, 0
		case i == len(regs):
			return 0, syscall.ENXIO
		}
		return max(off, uint64(regs[i].Offset)), 0
	case unix.SEEK_HOLE:
		switch {
		case regs == nil:
			return size, 0
		case i == len(regs) || uint64(regs[i].Offset) > off:
			return off, 0 // off is in a hole
		}
		// In the data of region i: the hole starts where this run
		// of touching regions ends.
		end := regs[i].Offset + regs[i].Length
		for i++; i < len(regs) && regs[i].Offset == end; i++ {
			end += regs[i].Length
		}
		return min(uint64(end), size), 0
	}
	return 0, syscall.EINVAL
}

var _ = (fusefs.NodeReadlinker)((*node)(nil))

// Readlink returns a symlink's target verbatim.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if n.fileMode() != syscall.S_IFLNK {
		return nil, syscall.EINVAL
	}
	o, errno := n.node("readlink")
	if errno != 0 {
		return nil, errno
	}
	return []byte(o.Entry.Linkname), 0
}

func (n *node) xattrs(op string) ([]tarindex.Xattr, syscall.Errno) {
	if !n.fsys.hasXattrs {
		return nil, 0
	}
	o, errno := n.node(op)
	if errno != 0 || o.Entry == nil {
		return nil, errno
	}
	return o.Entry.Xattrs, 0
}

var _ = (fusefs.NodeGetxattrer)((*node)(nil))

// Getxattr answers from the entry's sorted xattrs. With a zero-length
// dest it reports the size, as getxattr(2) does.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	xs, errno := n.xattrs("getxattr")
	if errno != 0 {
		return 0, errno
	}
	i, ok := slices.BinarySearchFunc(xs, attr, func(x tarindex.Xattr, key string) int {
		switch {
		case x.Key < key:
			return -1
		case x.Key > key:
			return 1
		}
		return 0
	})
	if !ok {
		return 0, syscall.ENODATA
	}
	v := xs[i].Value
	if len(dest) == 0 {
		return uint32(len(v)), 0
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

var _ = (fusefs.NodeListxattrer)((*node)(nil))

// Listxattr lists the entry's xattr names, each NUL-terminated.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	xs, errno := n.xattrs("listxattr")
	if errno != 0 {
		return 0, errno
	}
	size := 0
	for _, x := range xs {
		size += len(x.Key) + 1
	}
	if len(dest) == 0 {
		return uint32(size), 0
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	off := 0
	for _, x := range xs {
		off += copy(dest[off:], x.Key)
		dest[off] = 0
		off++
	}
	return uint32(size), 0
}

// totals are the figures statfs reports, counted once.
type totals struct {
	files  uint64 // distinct nodes: hardlinks count once
	blocks uint64 // in blockSize units
}

// count walks the whole tree once; only df and friends pay for it.
func (f *filesystem) count() totals {
	f.statOnce.Do(func() {
		seen := map[uint64]bool{}
		var walk func(dir *overlay.Node)
		walk = func(dir *overlay.Node) {
			// A damaged directory counts as empty: statfs's
			// figures are estimates anyway.
			children, _ := f.tree.ReadDirChecked(dir)
			for _, c := range children {
				if seen[c.Node.ID] {
					continue
				}
				seen[c.Node.ID] = true
				f.stat.files++
				if e := c.Node.Entry; e != nil && fileType(e) == syscall.S_IFREG {
					f.stat.blocks += (dataBytes(e, uint64(e.Size)) + blockSize - 1) / blockSize
				}
				if fileType(c.Node.Entry) == syscall.S_IFDIR {
					walk(c.Node)
				}
			}
		}
		f.stat.files = 1 // the root
		walk(f.tree.Root())
	})
	return f.stat
}

var _ = (fusefs.NodeStatfser)((*node)(nil))

// Statfs reports the image's size and file count, and no free space:
// nothing can be written.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	t := n.fsys.count()
	*out = fuse.StatfsOut{
		Blocks:  t.blocks,
		Files:   t.files,
		Bsize:   blockSize,
		Frsize:  blockSize,
		NameLen: 255,
	}
	return 0
}

// Every operation below would change the image: EROFS. The kernel
// already refuses them on a read-only mount; these answers matter for
// trees served without Mount, and replace go-fuse defaults that would
// report success (Unlink, Rmdir).

var _ = (fusefs.NodeSetattrer)((*node)(nil))

// Setattr refuses chmod, chown, truncate and utimes.
func (n *node) Setattr(ctx context.Context, f fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

var _ = (fusefs.NodeCreater)((*node)(nil))

// Create refuses new files.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

var _ = (fusefs.NodeTmpfiler)((*node)(nil))

// Tmpfile refuses O_TMPFILE.
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

var _ = (fusefs.NodeMkdirer)((*node)(nil))

// Mkdir refuses new directories.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

var _ = (fusefs.NodeMknoder)((*node)(nil))

// Mknod refuses new device nodes and fifos.
func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

var _ = (fusefs.NodeLinker)((*node)(nil))

// Link refuses new hardlinks.
func (n *node) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

var _ = (fusefs.NodeSymlinker)((*node)(nil))

// Symlink refuses new symlinks.
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

var _ = (fusefs.NodeUnlinker)((*node)(nil))

// Unlink refuses removing files.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return syscall.EROFS
}

var _ = (fusefs.NodeRmdirer)((*node)(nil))

// Rmdir refuses removing directories.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return syscall.EROFS
}

var _ = (fusefs.NodeRenamer)((*node)(nil))

// Rename refuses moving anything.
func (n *node) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	return syscall.EROFS
}

var _ = (fusefs.NodeSetxattrer)((*node)(nil))

// Setxattr refuses setting xattrs.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.EROFS
}

var _ = (fusefs.NodeRemovexattrer)((*node)(nil))

// Removexattr refuses removing xattrs.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return syscall.EROFS
}

var _ = (fusefs.NodeWriter)((*node)(nil))

// Write refuses writing; Open already refused write access.
func (n *node) Write(ctx context.Context, f fusefs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	return 0, syscall.EROFS
}
