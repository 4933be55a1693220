package cachefile

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"

	"github.com/ocifs/ocifs/internal/hugemem"
)

// Read loads the regular file at path into memory advised for huge
// pages (internal/hugemem) and returns it as a Mapping, which Close
// frees. An error for a missing file wraps io/fs.ErrNotExist.
//
// It is for a file that is checked in full and then kept, such as a
// merged tree: mapped, each of its 4 KiB pages costs a fault on first
// touch, while here one copy lands in 2 MiB pages. A 13.6 MB tree loads
// and checks in ~6 ms this way against ~9 ms mapped, on the VMs ocifs
// is measured on. Unlike a mapping, the copy cannot fault if the file is
// truncated meanwhile; such a file reads short and is an error.
func Read(path string) (*Mapping, error) {
	f, size, err := openRegular(path, "read")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, free := hugemem.Alloc(size)
	if _, err := io.ReadFull(f, b); err != nil {
		free()
		return nil, fmt.Errorf("read cache file %q: %w", path, err)
	}
	m := &Mapping{b: b, unmap: func([]byte) { free() }, copied: true}
	m.cleanup = runtime.AddCleanup(m, func(free func()) { free() }, free)
	return m, nil
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
