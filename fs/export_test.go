package fs

import "github.com/hanwen/go-fuse/v2/fuse"

// Tree is what a mount needs of an overlay.Tree, for tests that wrap
// one to count calls.
type Tree = tree

// MountTree is Mount over any Tree.
func MountTree(dir string, t Tree, content Content, opts MountOptions) (*fuse.Server, error) {
	return mount(dir, t, content, opts)
}
