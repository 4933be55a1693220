package cachefile

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// lockPoll is how often Lock retries a held lock, so that a waiting
// process notices its context being cancelled.
const lockPoll = 50 * time.Millisecond

// WriteAtomic writes b to path through a synced temporary file in the
// same directory and a rename, creating the directory if needed. Readers
// see the old file or the new one, never a partial one, and a mapping of
// the old file stays valid (see Map).
func WriteAtomic(path string, b []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cache directory: %w", err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create cache file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("write cache file %q: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync cache file %q: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close cache file %q: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename cache file to %q: %w", path, err)
	}
	// Make the rename durable; failure here only risks a rebuild.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
