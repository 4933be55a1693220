package overlay

import "github.com/ocifs/ocifs/tarindex"

// Layer is one layer to merge: its entries in tar order.
type Layer struct {
	Name    string // for messages, e.g. the blob digest
	Entries []tarindex.Entry
}

// Options tunes Merge. The zero value works.
type Options struct{}

// Node is one file of the merged tree. Hardlinked names share one Node.
type Node struct {
	// ID is stable for a given stack of layers and is used as the
	// inode number; the root is 1.
	ID uint64
	// Layer is the index in the Merge input of the layer that provides
	// the entry, or -1 for a directory no layer lists.
	Layer int
	// Entry holds the metadata and the content location inside Layer.
	// Entry.Name is the name in that layer, which need not be the
	// merged path. Xattrs are already filtered.
	Entry *tarindex.Entry
	// Nlink counts the names of a non-directory, and 2 + subdirectories
	// for a directory.
	Nlink uint32
}

// DirEntry is one name in a directory.
type DirEntry struct {
	Name string
	Node *Node
}

// Tree is the immutable merged tree. It is safe for concurrent use.
type Tree struct{}

// Merge applies layers in order, lowest first.
func Merge(layers []Layer, opts Options) (*Tree, error) { panic("unimplemented") }

// Root returns the root directory.
func (t *Tree) Root() *Node { panic("unimplemented") }

// Lookup returns the child of dir called name, or nil.
func (t *Tree) Lookup(dir *Node, name string) *Node { panic("unimplemented") }

// ReadDir returns dir's children sorted by name.
func (t *Tree) ReadDir(dir *Node) []DirEntry { panic("unimplemented") }

// Node returns the node with the given ID, or nil.
func (t *Tree) Node(id uint64) *Node { panic("unimplemented") }

// HasXattrs reports whether any node carries an xattr.
func (t *Tree) HasXattrs() bool { panic("unimplemented") }
