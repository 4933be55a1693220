package overlay

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"strings"

	"github.com/ocifs/ocifs/tarindex"
)

// Errors returned by Merge and Resolve. Merge wraps them with the layer
// and entry that caused them.
var (
	// ErrInvalidWhiteout: a ".wh." entry names no child (empty name, "."
	// or ".."). layer.md, "Whiteouts": implementations SHOULD return an
	// error.
	ErrInvalidWhiteout = errors.New("overlay: invalid whiteout")
	// ErrHardlinkTarget: a hardlink's target does not exist when its
	// layer is applied. umoci and containerd both fail the unpack.
	ErrHardlinkTarget = errors.New("overlay: hardlink target does not exist")
	// ErrHardlinkDir: a hardlink names a directory, which link(2)
	// refuses, so umoci and containerd fail the unpack.
	ErrHardlinkDir = errors.New("overlay: hardlink target is a directory")
	// ErrSymlinkLoop: resolving a path met too many symlinks (ELOOP):
	// more than 255 in Merge, filepath-securejoin's limit that umoci
	// and containerd apply, and more than 40 in lookups afterwards, as
	// Linux's path resolution.
	ErrSymlinkLoop = errors.New("overlay: too many levels of symbolic links")
	// ErrUnsupportedType: a typeflag no unpacker can create.
	ErrUnsupportedType = errors.New("overlay: unsupported entry type")
	// ErrNotExist is returned by Resolve; it matches io/fs.ErrNotExist.
	ErrNotExist = fmt.Errorf("overlay: %w", iofs.ErrNotExist)
	// ErrNotDir is returned by Resolve when a path goes through a
	// non-directory.
	ErrNotDir = errors.New("overlay: not a directory")
)

// Layer is one layer to merge: its entries in tar order.
type Layer struct {
	Name    string // for messages, e.g. the blob digest
	Entries []tarindex.Entry
}

// Options tunes Merge. The zero value works.
type Options struct {
	// Logger receives one debug record per entry that Merge skips or
	// repairs the way an unpacker would (see the package doc). Nil
	// discards.
	Logger *slog.Logger
}

// Node is one file of the merged tree. Hardlinked names share one Node
// ID.
//
// A Node is decoded from the tree's encoding by every call that returns
// one, so two calls give different pointers for the same file: compare
// nodes by ID, never by pointer. Nothing is cached in the Tree: a Node
// costs memory only while its caller keeps it, and changing it changes
// nothing else. The strings of a Node's Entry point into the tree's
// encoding and keep it alive.
type Node struct {
	// ID is stable for a given stack of layers and is used as the
	// inode number; the root is 1. IDs are dense: 1..Tree.Len().
	ID uint64
	// Layer is the index in the Merge input of the layer that provides
	// the entry, or -1 for a directory no layer lists.
	Layer int
	// Entry holds the metadata and the content location inside Layer:
	// a copy of the layer's entry, every field kept. Entry.Name is the
	// name in that layer, which need not be the merged path. Xattrs
	// are already filtered. Entry.Type is never tar.TypeLink: a
	// hardlink's names all point at its target's Node. Empty Xattrs
	// and Sparse are nil.
	Entry *tarindex.Entry
	// Nlink counts the names of a non-directory, and 2 + subdirectories
	// for a directory.
	Nlink uint32
}

// IsDir reports whether n is a directory.
func (n *Node) IsDir() bool { return n.Entry.Type == typeDir }

// DirEntry is one name in a directory.
type DirEntry struct {
	Name string
	Node *Node
}

// Tree is the immutable merged tree, safe for concurrent use. It is one
// encoded byte slice (docs/tree-format.md) and nothing else: Merge
// encodes the tree it built, Decode checks an encoding a cache kept
// (DecodeLazy as it is used), and every method reads the bytes,
// decoding only the nodes it returns. So that a warm mount costs little
// whatever the image's size, nothing is decoded ahead and nothing
// decoded is kept:
// each call that returns nodes returns fresh ones (compare them by ID),
// and memory follows what callers keep. Lookup is a binary search over
// the encoded names of one directory; Node is an index into fixed-size
// records.
type Tree struct {
	b []byte // the whole encoding, returned by MarshalBinary
	// Sections of b, cut by newTree. extra and names are also kept as
	// strings over the same bytes, so that decoded strings are
	// substrings: no copy, no allocation.
	nodes, dirents, extra []byte
	extraStr, names       string
	len, ndirents         uint32
	layers                uint32
	hasXattrs             bool
	lazy                  *lazyCheck // DecodeLazy's; nil when all is checked
}

// Root returns the root directory.
func (t *Tree) Root() *Node { return t.Node(1) }

// Len returns the number of nodes (distinct inodes) in the tree.
func (t *Tree) Len() int { return int(t.len) }

// Layers returns the number of layers merged into the tree. Every
// Node.Layer is below it.
func (t *Tree) Layers() int { return int(t.layers) }

// Lookup returns the child of dir called name, or nil. It never follows
// symlinks. It decodes only the child it returns.
func (t *Tree) Lookup(dir *Node, name string) *Node {
	n, _ := t.LookupChecked(dir, name)
	return n
}

// LookupChecked is Lookup that also reports damage a tree from
// DecodeLazy finds on the way (nil, nil: there is no such child).
func (t *Tree) LookupChecked(dir *Node, name string) (*Node, error) {
	if dir == nil || !t.valid(dir.ID) {
		return nil, nil
	}
	if err := t.ensureListable(uint32(dir.ID)); err != nil {
		return nil, err
	}
	if id := t.lookup(uint32(dir.ID), name); id != 0 {
		return t.node(id), nil
	}
	return nil, nil
}

// ReadDir returns dir's children sorted by name, or nil if dir is not a
// directory or is empty. The slice and its nodes are fresh: the caller
// owns them.
func (t *Tree) ReadDir(dir *Node) []DirEntry {
	des, _ := t.ReadDirChecked(dir)
	return des
}

// ReadDirChecked is ReadDir that also reports damage a tree from
// DecodeLazy finds on the way.
func (t *Tree) ReadDirChecked(dir *Node) ([]DirEntry, error) {
	if dir == nil || !t.valid(dir.ID) {
		return nil, nil
	}
	if err := t.ensureListable(uint32(dir.ID)); err != nil {
		return nil, err
	}
	start, n := t.kids(uint32(dir.ID))
	if n == 0 {
		return nil, nil
	}
	des := make([]DirEntry, n)
	for i := range des {
		name, id := t.dirent(start + uint32(i))
		des[i] = DirEntry{Name: name, Node: t.node(id)}
	}
	return des, nil
}

// ensureListable makes sure node id's children may be read.
func (t *Tree) ensureListable(id uint32) error {
	if err := t.ensureNode(id); err != nil {
		return err
	}
	return t.ensureDir(id)
}

// Node returns the node with the given ID, or nil.
func (t *Tree) Node(id uint64) *Node {
	n, _ := t.NodeChecked(id)
	return n
}

// NodeChecked is Node that also reports damage a tree from DecodeLazy
// finds in the node (nil, nil: there is no such ID).
func (t *Tree) NodeChecked(id uint64) (*Node, error) {
	if !t.valid(id) {
		return nil, nil
	}
	if err := t.ensureNode(uint32(id)); err != nil {
		return nil, err
	}
	return t.node(uint32(id)), nil
}

// HasXattrs reports whether any node carries an xattr.
func (t *Tree) HasXattrs() bool { return t.hasXattrs }

// maxLookupSymlinks is Linux's MAXSYMLINKS: path_resolution(7) gives up
// with ELOOP after 40 symlinks on one lookup, and so do lookups in the
// merged tree. Merge itself allows securejoin's 255 (maxSymlinks).
const maxLookupSymlinks = 40

// Resolve walks name from the root like lstat(2): symlinks before the
// last component are followed inside the tree ("..", at the root, stays
// at the root; absolute targets start at the root), the last component
// is never followed. "", "." and "/" name the root.
func (t *Tree) Resolve(name string) (*Node, error) {
	n, _, err := t.ResolvePath(name, false)
	return n, err
}

// ResolvePath walks name like Resolve and also returns the node's place
// in the tree ("." or "a/b", every symlink followed). With follow set,
// or a trailing slash, a symlink in the last component is followed too,
// as stat(2) does. Nothing ever resolves outside the tree. Only the
// node returned is decoded; the walk reads the records in place.
func (t *Tree) ResolvePath(name string, follow bool) (*Node, string, error) {
	if t.len == 0 {
		return nil, "", fmt.Errorf("resolve %q: %w", name, ErrNotExist)
	}
	type frame struct {
		id   uint32
		name string
	}
	stack := []frame{{id: 1, name: "."}}
	follow = follow || strings.HasSuffix(name, "/")
	rest := strings.TrimLeft(name, "/")
	links := 0
	for rest != "" {
		var comp string
		comp, rest, _ = strings.Cut(rest, "/")
		rest = strings.TrimLeft(rest, "/")
		switch comp {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		cur := stack[len(stack)-1].id
		if t.typ(cur) != typeDir {
			return nil, "", fmt.Errorf("resolve %q: %w", name, ErrNotDir)
		}
		if err := t.ensureDir(cur); err != nil {
			return nil, "", fmt.Errorf("resolve %q: %w", name, err)
		}
		id := t.lookup(cur, comp)
		if id == 0 {
			return nil, "", fmt.Errorf("resolve %q: %w", name, ErrNotExist)
		}
		if t.typ(id) == typeSymlink && (rest != "" || follow) {
			links++
			if links > maxLookupSymlinks {
				return nil, "", fmt.Errorf("resolve %q: %w", name, ErrSymlinkLoop)
			}
			target := t.linkname(id)
			if strings.HasPrefix(target, "/") {
				stack = stack[:1]
			}
			rest = target + "/" + rest
			continue
		}
		stack = append(stack, frame{id: id, name: comp})
	}
	names := make([]string, 0, len(stack)-1)
	for _, f := range stack[1:] {
		names = append(names, f.name)
	}
	p := strings.Join(names, "/")
	if p == "" {
		p = "."
	}
	return t.node(stack[len(stack)-1].id), p, nil
}

// Walk calls fn for every name in the tree in depth-first order, children
// sorted by name, starting with the root as ".". Paths are slash
// separated and relative to the root. A hardlinked node is visited once
// per name, each time as a fresh Node. If fn returns iofs.SkipDir for a
// directory its children are skipped; any other error stops the walk
// and is returned. The walk keeps its own stack, so no tree is too deep
// for it.
func (t *Tree) Walk(fn func(name string, n *Node) error) error {
	root, err := t.NodeChecked(1)
	if root == nil {
		return err
	}
	err = fn(".", root)
	if err == iofs.SkipDir {
		return nil
	}
	if err != nil {
		return err
	}
	// One frame per open directory: its path prefix and the dirents
	// still to visit.
	type frame struct {
		prefix    string
		next, end uint32
	}
	if err := t.ensureDir(1); err != nil {
		return err
	}
	start, n := t.kids(1)
	stack := []frame{{prefix: "", next: start, end: start + n}}
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		if f.next == f.end {
			stack = stack[:len(stack)-1]
			continue
		}
		de, id := t.dirent(f.next)
		f.next++
		name := f.prefix + de
		node := t.node(id)
		err := fn(name, node)
		if err == iofs.SkipDir {
			continue
		}
		if err != nil {
			return err
		}
		if node.IsDir() {
			if err := t.ensureDir(id); err != nil {
				return err
			}
			s, n := t.kids(id)
			stack = append(stack, frame{prefix: name + "/", next: s, end: s + n})
		}
	}
	return nil
}
