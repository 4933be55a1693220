//go:build unix

package cachefile

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// MapOptions tunes Map. The zero value works.
type MapOptions struct {
	// Populate maps every page in the mmap call (MAP_POPULATE on
	// Linux; elsewhere pages fault in on first touch), for a caller
	// that reads the whole file at once: one system call instead of a
	// page fault per few pages.
	Populate bool
}

// Map maps the regular file at path read-only. An error for a missing
// file wraps io/fs.ErrNotExist.
//
// Why not os.ReadFile: a copy lands in fresh memory, and on the VMs
// ocifs is measured on the first touch of fresh memory is costly and
// erratic (after a few idle seconds the host has taken freed memory
// back): a 13.6 MB merged tree took 3–33 ms to read that way, and
// 1 ms to map populated, page-cache pages being already there. And a
// mount reads only a few KiB of each layer index (its access section)
// until it needs a gzip window: mapped, the rest is never touched
// (docs/index-format.md, "Loading").
func Map(path string, opts MapOptions) (*Mapping, error) {
	f, size, err := openRegular(path, "map")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size == 0 {
		return &Mapping{b: []byte{}}, nil // mmap refuses length 0
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED|populate(opts.Populate))
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
// come back on the next read, a minor fault each. For a caller that has
// read what it needs now and will read only a part of the file again,
// such as an index whose gzip windows are read only when a span is
// decoded. Bytes stays valid.
func (m *Mapping) Release() {
	if m.unmap != nil && len(m.b) > 0 {
		unix.Madvise(m.b, unix.MADV_DONTNEED) // advice only: an error changes nothing
	}
}

// openRegular opens the regular file at path and returns its size,
// with errors that say what op ("map", "read") was about to do. An error
// for a missing file wraps io/fs.ErrNotExist.
func openRegular(path, op string) (*os.File, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("%s cache file: %w", op, err)
	}
	st, err := f.Stat()
	switch {
	case err != nil:
		err = fmt.Errorf("%s cache file: %w", op, err)
	case !st.Mode().IsRegular():
		err = fmt.Errorf("%s cache file %q: not a regular file", op, path)
	case st.Size() > math.MaxInt:
		err = fmt.Errorf("%s cache file %q: %d bytes do not fit in memory", op, path, st.Size())
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, int(st.Size()), nil
}
