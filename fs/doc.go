// Package fs serves a merged image tree (overlay.Tree) as a read-only
// FUSE filesystem with go-fuse. It is the only package that knows about
// FUSE.
//
// # Nodes
//
// The node tree is discovered on demand: a go-fuse inode exists only
// once the kernel asked for it, through Lookup or a READDIRPLUS reply,
// never because the image has the file. Each inode is created with the
// overlay node's stable ID as its inode number (StableAttr.Ino), so
// go-fuse deduplicates hardlinked names onto one inode and the kernel
// sees the same st_ino and the right st_nlink for every name. Mounting a
// 100k-file image therefore costs the same as mounting an empty one.
//
// Attributes come from the layer index entry: size (a symlink's is the
// length of its target), 512-byte blocks of data (a sparse file's holes
// take none, so du shows what it holds and cp, tar and rsync see that
// it is sparse), mode with the file type from
// the tar typeflag and the permission bits including setuid, setgid and
// sticky, uid/gid, rdev of devices, nlink from the merged tree, and
// mtime as atime, mtime and ctime (tar records one time that matters).
// lseek's SEEK_DATA and SEEK_HOLE answer from a sparse file's map.
//
// # Errors
//
// go-fuse wants a syscall.Errno from every operation. Errors become
// errnos in exactly one place, filesystem.errno: errors.As finds a
// syscall.Errno anywhere in a %w chain and errors.Is maps the io/fs and
// context sentinels. Anything unknown (a corrupt blob, a digest
// mismatch) becomes EIO and is logged once, with the file's path, so
// the reason is in the log even though the caller only sees EIO;
// nothing unknown is ever turned into wrong bytes.
//
// fusefs.ToErrno (go-fuse v2.12.1, through fuse.ToStatus) is not used.
// It does unwrap a syscall.Errno (errors.As), but it compares the io/fs
// sentinels with ==, so the usual shape of a missing file, a wrapped
// iofs.ErrNotExist ("lookup %q: %w"), reaches the kernel as ENOTSUP
// instead of ENOENT; it has no case for a cancelled context (EINTR
// here); it maps os.ErrPermission to EPERM where open(2) says EACCES;
// and what it cannot convert becomes ENOTSUP, not EIO, with the reason
// on the standard library's global logger instead of ours.
//
// # Kernel caching
//
// The image cannot change under the mount, so every kernel cache is used
// as hard as it goes: entries and attributes are valid for a long time
// (Options.EntryTimeout, Options.AttrTimeout; an hour by default),
// failed lookups are cached just as long (NegativeTimeout), files keep
// their page cache across opens (the first read-only open answers
// ENOSYS, so the kernel stops sending OPEN, RELEASE and, through Flush,
// FLUSH, and keeps pages as with FOPEN_KEEP_CACHE), directory listings
// are cached in the page cache (FOPEN_CACHE_DIR) and symlink targets too.
//
// Extended attributes are the most expensive FUSE traffic there is: the
// kernel asks for security.capability, ACLs and SELinux labels on many
// operations, one round trip each. When the image has no xattrs at all,
// Mount sets go-fuse's DisableXAttrs: the first xattr request answers
// ENOSYS, the kernel remembers that for the whole mount and never asks
// again (getxattr and listxattr then fail with EOPNOTSUPP in user space,
// as on a filesystem mounted without xattr support). The node methods
// also answer at once (ENODATA, an empty list) when the tree has none,
// for trees served through NewRoot without Mount.
//
// # Read-only
//
// Mount always mounts read-only (MS_RDONLY, the "ro" option), so the
// kernel refuses writes before they reach us. Every write operation is
// implemented anyway and answers EROFS, because go-fuse's defaults for
// some (Unlink, Rmdir) are success. Open refuses write access with
// EROFS.
//
// Mounts are nodev,nosuid unless MountOptions.Dev or Suid say
// otherwise: an image from a stranger should not get device nodes or
// setuid binaries (or file capabilities) on the host by being browsed.
// Without AllowOther only the mounting user can reach the mount at all,
// and that user may read every file of the image, whatever its owner
// (like an unpacked copy they own). With AllowOther the mount adds
// default_permissions so the kernel enforces the image's owners and
// modes against every user.
//
// # What it never does
//
// fs never parses tar, never reads a layout and never decompresses:
// names and metadata come from the overlay.Tree, bytes from Content
// (rootfs.RootFS in production). It holds no per-file state beyond the
// go-fuse inodes the kernel asked for.
//
// # Deadlocks
//
// A process that serves a mount must not touch it from the goroutines
// that serve it. Tests that mount in-process read the mount from the
// test goroutines only, and the CLI's daemon never looks inside its own
// mount.
package fs
