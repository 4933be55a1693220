// Package overlay merges the entry lists of an image's layers into the
// one read-only tree a careful unpacker (umoci, containerd) would leave
// on disk after applying the layers in order, without unpacking
// anything.
//
// # What overlay owns and never does
//
// overlay owns the whiteout, replacement, hardlink and path-resolution
// semantics of layer application, the merged tree that results and its
// encoding (docs/tree-format.md). It never reads a blob or parses tar
// (tarindex does), never touches FUSE or syscall errnos (fs does) and
// never writes to disk: the encoding is bytes, and rootfs decides where
// they are kept. Merge takes []tarindex.Entry and gives a *Tree that
// holds a copy of what it needs of them; the bytes of a file are found
// through Node.Layer and Node.Entry by whoever holds the blobs.
//
// # Rules
//
// The spec is the image-spec's layer.md ("Applying Changesets",
// "Whiteouts", "Opaque Whiteout"):
// https://github.com/opencontainers/image-spec/blob/main/layer.md.
// Where it is terse we do what containerd's pkg/archive (applyNaive) and
// umoci's oci/layer (TarExtractor.UnpackEntry) do, and where those two
// disagree we say which one we follow. Merge fails only where the spec
// says an implementation SHOULD fail, where both unpackers fail the
// unpack, or (the whiteout names ".wh.." and ".wh...") where one fails
// and the other would remove a directory no whiteout names; everything
// else a careful unpacker would skip or repair is skipped or repaired,
// with one debug record on Options.Logger.
//
//   - Order. Layers apply lowest first (layer.md "Applying
//     Changesets"). Names are cleaned as path.Clean("/"+name), as
//     containerd and umoci do (tarindex delivers them so; Merge cleans
//     any that are not), so "./x", "/x", "x/" and "../x" all mean "x"
//     and no entry can name a place above the root; "." is the root.
//     Hardlink targets are cleaned the same way.
//
//   - Whiteouts only hide lower layers. ".wh.NAME" removes NAME and its
//     whole subtree from what the lower layers built; it never hides an
//     entry of its own layer, wherever it stands in the tar (layer.md
//     "Whiteouts": "Whiteout files MUST only apply to resources in
//     lower/parent layers"). Merge therefore applies a layer in two
//     passes: first it resolves every whiteout of the layer against the
//     tree as the lower layers left it and removes the targets, then it
//     adds the layer's other entries in tar order. umoci reaches the same
//     result in one pass by remembering the paths the layer wrote;
//     containerd's plain ".wh." handling removes same-layer entries that
//     came earlier in the tar, against the spec.
//
//   - Opaque directories. ".wh..wh..opq" in a directory removes every
//     child the lower layers gave it, before or after its siblings in
//     the tar (layer.md "Opaque Whiteout"), and keeps the directory. The
//     opaque name is checked before the ".wh." prefix. Other
//     ".wh..wh.*" names are aufs metadata (.wh..wh.plnk, .wh..wh.aufs)
//     and are ignored, as both unpackers effectively do; entries under
//     such a directory are skipped with the next rule (umoci and
//     containerd would create the directory for them).
//
//   - Invalid whiteouts. ".wh." with nothing after it is invalid and
//     Merge returns ErrInvalidWhiteout (layer.md: implementations SHOULD
//     return an error; umoci since 0.5 and containerd do). ".wh.." and
//     ".wh..." name no child either and fail the same way (containerd
//     refuses them; umoci would remove the directory itself).
//
//   - Whiteouts never appear in the tree. No entry whose base name starts
//     with ".wh." is ever added, and no directory with such a name is
//     created on the way to an entry (a symlink could lead there); such
//     an entry is skipped.
//
//   - Whiteouts of nothing. A whiteout whose target or parent does not
//     exist, or whose parent is not a directory (for example under a path
//     the lower layers made a file), does nothing and creates nothing,
//     as in umoci. containerd would create the missing parents.
//
//   - Directory over directory merges: the upper entry's metadata
//     (mode, owner, times, xattrs) replaces the lower one and the
//     children combine (layer.md "Changeset over existing files").
//
//   - Anything else replaces. A file over a directory removes the whole
//     subtree; a directory over a file starts empty; a symlink over a
//     directory does not keep its children (layer.md: "removing the file
//     path ... recreating the file path").
//
//   - Same path twice in one layer. The later entry is applied over the
//     earlier one by the same rules, as extraction would do (layer.md
//     forbids duplicates, but real layers have them).
//
//   - Hardlinks bind when their layer is applied, to the node the
//     (cleaned) link name names at that moment: an earlier entry of the
//     same layer or a lower layer's file. All names of one file share one
//     Node and Node.Nlink counts them; the link entry's own header is
//     ignored, as link(2) gives the new name the target's inode (umoci
//     does not apply a link's metadata either). A later layer that
//     replaces one name gives that name a new node and leaves the others
//     on the old one, as unlink-and-recreate does on disk. The link name's
//     parent path follows symlinks inside the root; its last component is
//     not followed (link(2) links a symlink itself). A hardlink whose
//     target does not exist at that point - missing, removed by a
//     whiteout of the same layer, or appearing only later in the tar -
//     fails the merge with ErrHardlinkTarget, and a hardlink to a
//     directory with ErrHardlinkDir: both umoci ("link: ... no such
//     file") and containerd fail the unpack, so no unpacker would give a
//     tree to compare with. The existing path is removed before the
//     target is looked up, as both unpackers do, so a link to itself
//     fails too.
//
//   - A layer's paths are its own. Every name in a layer (an entry's,
//     a whiteout's, an opaque marker's, a hardlink target's) is a path
//     of that layer, so where the layer itself has an entry for a
//     component of it, that entry decides what the component is, not
//     what the lower layers left there: a lower symlink that the layer
//     replaces with a directory (or any non-symlink) is never followed,
//     wherever the replacing entry stands in the tar. A whiteout or an
//     opaque marker under such a directory removes nothing (the
//     directory starts empty: layer.md "Whiteouts", "Whiteout files MUST
//     only apply to resources in lower/parent layers"), an entry under
//     it lands in it, and a hardlink into it finds only what the layer
//     put there before the link. The layer's own symlinks are followed,
//     also out of a directory it made anew, and so is a symlink it
//     hardlinks (link(2) links the symlink itself). A name the layer
//     spells through a parent it changed in between (a directory, then
//     a symlink) is not the entry of that spelling, which landed in the
//     old directory. That is the tree umoci leaves for a
//     tar in the usual order (a directory before what is in it) and the
//     one an overlayfs stack of the unpacked layers shows; `RUN rm /l &&
//     mkdir /l` over a symlink l makes the shape, and a merged-usr base
//     (lib -> usr/lib) would otherwise lose usr/lib.
//
//   - Symlinks in parent paths. Where the layer has no entry of its own
//     for a component, an entry's parent path is resolved with every
//     symlink followed inside the root, the way filepath-securejoin
//     does for umoci and continuity's RootPath for containerd: ".." at
//     the root stays at the root, an absolute target starts again at
//     the root, and nothing ever resolves outside the root. The entry
//     lands at the resolved place and the symlink itself stays. The
//     same holds for a whiteout's parent and a hardlink target's
//     parent, so a whiteout acts where the layer's own entries under
//     the same parent land. The last component is never followed: an
//     entry replaces a symlink of its own name. More than 255 symlinks
//     on one resolution (a loop) fails the merge with ErrSymlinkLoop,
//     as securejoin's ELOOP fails both unpackers.
//
//   - Rules version. RulesVersion numbers these rules; a cache of
//     merged trees keys on it, so a tree merged under other rules is
//     merged again.
//
//   - Implicit directories. Parents that no layer lists are created as
//     directories with mode 0755, uid and gid 0 and mtime 0, and
//     Node.Layer -1: that is what umoci's MkdirAll(0777) under the usual
//     umask 022 and containerd's mkdir(0755) leave when run as root,
//     except for the mtime, which on disk is the unpack time and carries
//     no image data. A later entry for the directory gives it its
//     metadata.
//
//   - Non-directories in the way. If a component of a parent path is a
//     non-directory (a file, device or fifo, possibly reached through a
//     symlink), it is replaced by an implicit directory and the entry is
//     added, as umoci does since 0.5. umoci 0.4 and containerd fail with
//     ENOTDIR instead; we do not fail an image over an entry the newest
//     umoci places.
//
//   - The root. A directory entry for "." gives the root its metadata.
//     A non-directory "." is skipped: umoci refuses the layer and
//     containerd ignores every root entry, and the root cannot stop being
//     a directory.
//
//   - Xattrs are presented as the layer stores them, except
//     trusted.overlay.*, which are dropped. A kernel overlayfs stacked on
//     the mount (ocifs bundle --writable) obeys trusted.overlay.opaque,
//     .redirect and .metacopy on its lower layers, so an image could
//     otherwise hide or redirect files of the writable layer: they are
//     image data that must never reach the kernel as metadata. umoci 0.4
//     drops the names overlayfs defined then (opaque, redirect, origin,
//     impure, nlink, upper, metacopy) on unpack and writes the others;
//     umoci 0.6 escapes them to trusted.overlay.overlay.* when it unpacks
//     for overlayfs. We drop the whole namespace, so that a name a later
//     kernel adds is covered too. user.overlay.* is kept: the kernel
//     only obeys it with the userxattr mount option, for unprivileged
//     mounts. The entry belongs to the layer index, so it is copied when
//     filtered, never changed.
//
//   - Unsupported types. An entry type no unpacker can create fails the
//     merge with ErrUnsupportedType, as it fails both unpackers.
//
// # The tree
//
// Tree is immutable and safe for concurrent use. Node IDs are assigned
// in a depth-first walk with children sorted by name, so the same
// layers always give the same IDs (and the same encoding, byte for
// byte); the root is 1, hardlinked names share an ID, and IDs are dense.
//
// A Tree is one encoded byte slice and nothing else (docs/tree-format.md):
// a fixed-size record per node, indexed by ID, so Tree.Node is O(1); a
// table of names in which each directory's children are one sorted run,
// so Lookup is a binary search over the encoded names that decodes only
// the child it finds; a names section and a section of the rarer
// fields (link targets, xattrs, sparse maps, devices). Merge builds a
// mutable tree while it applies layers (children kept in insertion
// order, which for tar streams is usually sorted, with a hash index only
// for large unsorted directories), then numbers it and writes the
// encoding. MarshalBinary returns those bytes and Decode takes them
// back, checking them completely (CRC-32C, bounds, every record, sorted
// children, one tree from the root), so that a tree cached on disk loads
// in one pass over its bytes - about 2 ms for 110,000 nodes - instead of
// decoding every layer's entries and merging again. DecodeLazy checks
// the same as the tree is used (a 64 KiB block's checksum, a record, a
// directory at a time), so that a mount's load costs the same at any
// size (docs/tree-format.md, "Lazy checking").
//
// Nodes are decoded when asked for, each call giving a fresh *Node and
// *tarindex.Entry (one allocation; strings point into the encoding), so
// the Tree caches nothing and memory follows what callers keep; compare
// nodes by ID, not by pointer. The encoding costs about 64 bytes per
// node, 12 per name and the names' bytes, of which a directory's entry
// name and a name that ends its node's entry name take none (see
// docs/benchmarks.md).
package overlay
