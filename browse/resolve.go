package browse

import (
	"archive/tar"
	"errors"
	"fmt"
	"strings"

	"github.com/ocifs/ocifs/overlay"
)

// maxSymlinks is Linux's MAXSYMLINKS: path_resolution(7) gives up with
// ELOOP after 40 symlinks on one lookup.
const maxSymlinks = 40

// Errors of the path functions.
var (
	// ErrLoop: resolving a path met more than 40 symlinks (ELOOP).
	ErrLoop = errors.New("browse: too many levels of symbolic links")
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

// resolve walks name from the root of t. Symlinks before the last
// component are always followed, inside the root; the last one only if
// follow is set (like stat(2) against lstat(2)). A trailing slash
// follows the last component too, as it does on Linux.
func resolve(t *overlay.Tree, name string, follow bool) (resolved, error) {
	type frame struct {
		node *overlay.Node
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
			return resolved{}, fmt.Errorf("resolve %q: %w", "/"+strings.TrimLeft(name, "/"), overlay.ErrNotDir)
		}
		n := t.Lookup(cur, comp)
		if n == nil {
			return resolved{}, fmt.Errorf("resolve %q: %w", "/"+strings.TrimLeft(name, "/"), overlay.ErrNotExist)
		}
		if n.Entry.Type == tar.TypeSymlink && (rest != "" || follow) {
			links++
			if links > maxSymlinks {
				return resolved{}, fmt.Errorf("resolve %q: %w", "/"+strings.TrimLeft(name, "/"), ErrLoop)
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
	return resolved{node: stack[len(stack)-1].node, path: p}, nil
}

// displayPath turns a tree path ("." or "a/b") into what users see
// ("/" or "/a/b").
func displayPath(p string) string {
	if p == "." || p == "" {
		return "/"
	}
	return "/" + p
}
