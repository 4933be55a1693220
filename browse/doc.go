// Package browse answers questions about an image's merged root
// filesystem without mounting it: list a directory (List), read a file
// (Cat), describe one path and the layers behind it (Stat), compare two
// images (Diff) and write the whole tree as one tar stream (Export).
//
// # What browse owns and never does
//
// browse works only on an opened *rootfs.RootFS: the merged tree of
// package overlay and file contents through RootFS.ReadAt. It never
// touches FUSE, never writes anything to disk and never parses a layer
// itself; it reads the layers' entries (RootFS.Entries) only to tell where
// a path comes from.
//
// # Paths and symlinks
//
// Every path is taken relative to the image root, whatever its leading
// slashes. Symlinks are followed inside the image the way a chroot
// would: an absolute target starts again at the image root and ".." at
// the root stays at the root, so no symlink ever leads to a host file.
// More than 40 symlinks on one resolution fail with ErrLoop, Linux's
// MAXSYMLINKS (ELOOP).
//
// # Errors
//
// Errors read "<op> <path>: <cause>"; a missing path wraps
// overlay.ErrNotExist (and so io/fs.ErrNotExist).
package browse
