//go:build !unix

package cachefile

import (
	"fmt"
	"os"
)

// MapOptions tunes Map; where mmap is missing there is nothing to tune.
type MapOptions struct{ Populate bool }

// Map reads the file at path where mmap is missing; the Mapping then
// holds an ordinary copy and Close does nothing. An error for a missing
// file wraps io/fs.ErrNotExist.
func Map(path string, _ MapOptions) (*Mapping, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("map cache file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("map cache file %q: not a regular file", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("map cache file: %w", err)
	}
	return &Mapping{b: b}, nil
}

// Release does nothing where the file was read rather than mapped.
func (m *Mapping) Release() {}
