package bundle

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// mountinfoPath lists this process's mounts (proc(5), "mountinfo").
const mountinfoPath = "/proc/self/mountinfo"

// mountPoints returns every mount point of this mount namespace.
func mountPoints() ([]string, error) {
	data, err := os.ReadFile(mountinfoPath)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", mountinfoPath, err)
	}
	return parseMountinfo(data)
}

// parseMountinfo returns the mount point (the fifth field) of each
// line of a mountinfo file, unescaped.
func parseMountinfo(data []byte) ([]string, error) {
	var points []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		points = append(points, unescapeMountinfo(f[4]))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse %q: %w", mountinfoPath, err)
	}
	return points, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a
// space, \011, \012, \134) in a mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountsUnder returns the mount points at or below dir, an absolute
// path without symlinks, deepest last as mountinfo lists them.
func mountsUnder(dir string) ([]string, error) {
	points, err := mountPoints()
	if err != nil {
		return nil, err
	}
	var under []string
	for _, p := range points {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			under = append(under, p)
		}
	}
	return under, nil
}

// isMountPoint reports whether path, absolute and without symlinks, is
// a mount point.
func isMountPoint(path string) (bool, error) {
	points, err := mountPoints()
	if err != nil {
		return false, err
	}
	for _, p := range points {
		if p == path {
			return true, nil
		}
	}
	return false, nil
}
