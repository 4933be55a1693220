package tarindex

import "path"

// CleanName cleans a tar entry name (or a hardlink's target) as
// Entry.Name says: path.Clean("/"+name) without the leading slash, and
// "." for the root, as containerd and umoci clean names before they
// extract, so that "./x", "/x", "x/" and "../x" all mean "x" and no name
// can reach above the root. A name that is clean already costs one scan
// and no allocation.
func CleanName(name string) string {
	if isClean(name) {
		return name
	}
	c := path.Clean("/" + name)
	if c == "/" {
		return "."
	}
	return c[1:]
}

// isClean reports whether name is CleanName's result already: "." or
// components that are neither empty, ".", nor "..".
func isClean(name string) bool {
	if name == "." {
		return true
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '/' {
			continue
		}
		switch name[start:i] {
		case "", ".", "..":
			return false
		}
		start = i + 1
	}
	return true
}
