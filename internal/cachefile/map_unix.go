//go:build unix

package cachefile

import (
	"fmt"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Map maps the regular file at path read-only. An error for a missing
// file wraps io/fs.ErrNotExist.
//
// Why not os.ReadFile: a mount reads a few KiB of each layer index (its
// access section) and later the gzip windows of the spans it reads;
// mapped, the rest of the file is never touched. Read, all of it would
// be copied into fresh memory, which on the VMs ocifs is measured on
// costs several microseconds a page (docs/index-format.md, "Loading").
func Map(path string) (*Mapping, error) {
	f, size, err := openRegular(path, "map")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size == 0 {
		return &Mapping{b: []byte{}}, nil // mmap refuses length 0
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map cache file %q: %w", path, err)
	}
	unmap := func(b []byte) { syscall.Munmap(b) }
	m := &Mapping{b: b, unmap: unmap}
	m.cleanup = runtime.AddCleanup(m, unmap, b)
	return m, nil
}

// Release lets the kernel take the mapped pages out of this process's
// resident set (madvise MADV_DONTNEED): they stay in the page cache and
// come back on the next read, a minor fault each; a copy made by Read
// is kept as it is. For a caller that has
// checked the whole file and will read only a part of it again, such as
// an index whose gzip windows are read only when a span is decoded.
// Bytes stays valid.
func (m *Mapping) Release() {
	if m.unmap != nil && !m.copied && len(m.b) > 0 {
		unix.Madvise(m.b, unix.MADV_DONTNEED) // advice only: an error changes nothing
	}
}
