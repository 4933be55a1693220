package browse

import (
	"errors"

	"github.com/ocifs/ocifs/overlay"
)

// Errors of the path functions.
var (
	// ErrLoop: resolving a path met more than 40 symlinks (ELOOP).
	ErrLoop = overlay.ErrSymlinkLoop
	// ErrIsDir: contents asked of a directory (EISDIR). Contents of
	// other non-regular files fail with rootfs.ErrNotRegular.
	ErrIsDir = errors.New("browse: is a directory")
)

// resolved is a node and the path that leads to it with every symlink
// before it followed: its place in the merged tree.
type resolved struct {
	node *overlay.Node
	path string // slash separated, no leading slash; "." is the root
}

// resolve walks name from the root of t; the last component is
// followed only if follow is set (stat(2) as opposed to lstat(2)).
func resolve(t *overlay.Tree, name string, follow bool) (resolved, error) {
	n, p, err := t.ResolvePath(name, follow)
	if err != nil {
		return resolved{}, err
	}
	return resolved{node: n, path: p}, nil
}

// displayPath turns a tree path ("." or "a/b") into what users see
// ("/" or "/a/b").
func displayPath(p string) string {
	if p == "." || p == "" {
		return "/"
	}
	return "/" + p
}
