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

// Node is one file of the merged tree. Hardlinked names share one Node.
// Nodes belong to their Tree and must not be modified.
type Node struct {
	// ID is stable for a given stack of layers and is used as the
	// inode number; the root is 1. IDs are dense: 1..Tree.Len().
	ID uint64
	// Layer is the index in the Merge input of the layer that provides
	// the entry, or -1 for a directory no layer lists.
	Layer int
	// Entry holds the metadata and the content location inside Layer.
	// Entry.Name is the name in that layer, which need not be the
	// merged path. Xattrs are already filtered. Entry.Type is never
	// tar.TypeLink: a hardlink's names all point at its target's Node.
	Entry *tarindex.Entry
	// Nlink counts the names of a non-directory, and 2 + subdirectories
	// for a directory.
	Nlink uint32

	// kids is the range of this directory's children in Tree.dirents.
	kidsStart, kidsLen int32
}

// IsDir reports whether n is a directory.
func (n *Node) IsDir() bool { return n.Entry.Type == typeDir }

// DirEntry is one name in a directory.
type DirEntry struct {
	Name string
	Node *Node
}

// Tree is the immutable merged tree. It is safe for concurrent use.
type Tree struct {
	// nodes is indexed by ID-1; DirEntry.Node points into it.
	nodes []Node
	// dirents holds every directory's children, each directory's
	// children contiguous and sorted by name.
	dirents   []DirEntry
	hasXattrs bool
}

// Root returns the root directory.
func (t *Tree) Root() *Node { return &t.nodes[0] }

// Len returns the number of nodes (distinct inodes) in the tree.
func (t *Tree) Len() int { return len(t.nodes) }

// Lookup returns the child of dir called name, or nil. It never follows
// symlinks.
func (t *Tree) Lookup(dir *Node, name string) *Node {
	kids := t.ReadDir(dir)
	lo, hi := 0, len(kids)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if kids[m].Name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(kids) && kids[lo].Name == name {
		return kids[lo].Node
	}
	return nil
}

// ReadDir returns dir's children sorted by name, or nil if dir is not a
// directory. The slice is shared by all callers and must not be
// modified; it is never written after Merge returns.
func (t *Tree) ReadDir(dir *Node) []DirEntry {
	if dir == nil || dir.kidsLen == 0 {
		return nil
	}
	s, e := int(dir.kidsStart), int(dir.kidsStart)+int(dir.kidsLen)
	return t.dirents[s:e:e]
}

// Node returns the node with the given ID, or nil.
func (t *Tree) Node(id uint64) *Node {
	if id == 0 || id > uint64(len(t.nodes)) {
		return nil
	}
	return &t.nodes[id-1]
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
// as stat(2) does. Nothing ever resolves outside the tree.
func (t *Tree) ResolvePath(name string, follow bool) (*Node, string, error) {
	type frame struct {
		node *Node
		name string
	}
	stack := []frame{{node: t.Root(), name: "."}}
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
		cur := stack[len(stack)-1].node
		if !cur.IsDir() {
			return nil, "", fmt.Errorf("resolve %q: %w", name, ErrNotDir)
		}
		n := t.Lookup(cur, comp)
		if n == nil {
			return nil, "", fmt.Errorf("resolve %q: %w", name, ErrNotExist)
		}
		if n.Entry.Type == typeSymlink && (rest != "" || follow) {
			links++
			if links > maxLookupSymlinks {
				return nil, "", fmt.Errorf("resolve %q: %w", name, ErrSymlinkLoop)
			}
			target := n.Entry.Linkname
			if strings.HasPrefix(target, "/") {
				stack = stack[:1]
			}
			rest = target + "/" + rest
			continue
		}
		stack = append(stack, frame{node: n, name: comp})
	}
	names := make([]string, 0, len(stack)-1)
	for _, f := range stack[1:] {
		names = append(names, f.name)
	}
	p := strings.Join(names, "/")
	if p == "" {
		p = "."
	}
	return stack[len(stack)-1].node, p, nil
}

// Walk calls fn for every name in the tree in depth-first order, children
// sorted by name, starting with the root as ".". Paths are slash
// separated and relative to the root. A hardlinked node is visited once
// per name. If fn returns iofs.SkipDir for a directory its children are
// skipped; any other error stops the walk and is returned.
func (t *Tree) Walk(fn func(name string, n *Node) error) error {
	err := fn(".", t.Root())
	if err == iofs.SkipDir {
		return nil
	}
	if err != nil {
		return err
	}
	return t.walk("", t.Root(), fn)
}

func (t *Tree) walk(prefix string, dir *Node, fn func(string, *Node) error) error {
	for _, de := range t.ReadDir(dir) {
		name := prefix + de.Name
		err := fn(name, de.Node)
		if err == iofs.SkipDir {
			continue
		}
		if err != nil {
			return err
		}
		if de.Node.IsDir() {
			if err := t.walk(name+"/", de.Node, fn); err != nil {
				return err
			}
		}
	}
	return nil
}
