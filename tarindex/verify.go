package tarindex

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime"

	"github.com/klauspost/compress/flate"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ocifs/ocifs/internal/cachefile"
)

// Verify is Decode followed by what Decode leaves to a Reader: every
// gzip window is inflated and checked against its access point's
// CRC-32C and the 32 KiB a window may hold. An encoding Verify accepts
// has no byte left unchecked, so no later read can meet damage in it;
// it costs one inflate of 32 KiB per access point (about 0.1 ms each),
// which is why a mount uses DecodeAccess instead and `ocifs index`
// uses this. Like Decode, the Index keeps parts of b.
func Verify(b []byte) (*Index, error) {
	ix, err := Decode(b)
	if err != nil {
		return nil, err
	}
	for seg, p := range ix.points {
		if p.Kind != pointInflate {
			continue
		}
		if _, err := ix.window(seg); err != nil {
			return nil, fmt.Errorf("verify index: %w", err)
		}
	}
	return ix, nil
}

// window inflates and checks the window of access point seg, which
// must be of kind pointInflate. DecodeAccess does not read the windows:
// this check, made whenever a window is used, is what makes a damaged
// one ErrCorrupt instead of wrong bytes.
func (ix *Index) window(seg int) ([]byte, error) {
	p := ix.points[seg]
	if p.winOff < 0 || p.winLen < 0 || p.winOff+p.winLen > len(ix.windows) {
		return nil, fmt.Errorf("window of access point %d outside index: %w", seg, ErrCorrupt)
	}
	// The windows may live in a mapped cache file (Cache.load):
	// CatchFault survives its truncation, KeepAlive keeps it mapped
	// until the window has been inflated.
	var win []byte
	err := cachefile.CatchFault(func() (err error) {
		win, err = io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(ix.windows[p.winOff:p.winOff+p.winLen])), 32<<10+1))
		return err
	})
	runtime.KeepAlive(ix)
	if err != nil {
		return nil, fmt.Errorf("inflate window of access point %d: %w: %w", seg, ErrCorrupt, err)
	}
	if len(win) > 32<<10 {
		return nil, fmt.Errorf("inflate window of access point %d: longer than 32 KiB: %w", seg, ErrCorrupt)
	}
	if got := crc32.Checksum(win, castagnoli); got != p.winCRC {
		return nil, fmt.Errorf("window of access point %d: checksum %08x, index says %08x: %w", seg, got, p.winCRC, ErrCorrupt)
	}
	return win, nil
}

// Verify is Index for a caller that wants every byte of the cached
// file checked (the Verify function) instead of what a mount checks:
// `ocifs index`. A file that fails is rebuilt and replaced, exactly as
// Index does; Cache.Repaired, when set, is told.
func (c *Cache) Verify(ctx context.Context, blob io.ReaderAt, desc ocispec.Descriptor, opts BuildOptions) (*Index, error) {
	return c.get(ctx, blob, desc, opts, Verify)
}

// Drop removes the cached index of desc if the file there fails Verify:
// for a caller whose reads met damage that the checks made at load did
// not see (a window, under a mount), so that the next load rebuilds it
// instead of meeting the same damage. A file that passes, maybe one
// another process has just rebuilt, is kept. It reports whether it
// removed the file.
func (c *Cache) Drop(desc ocispec.Descriptor) (bool, error) {
	p, err := c.Path(desc)
	if err != nil {
		return false, err
	}
	f, err := cachefile.Map(p, cachefile.MapOptions{})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("drop cached index: %w", err)
	}
	err = cachefile.CatchFault(func() error {
		_, err := Verify(f.Bytes())
		return err
	})
	f.Close()
	if err == nil {
		return false, nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("drop cached index: %w", err)
	}
	c.log(slog.LevelInfo, "dropped damaged cached index", "path", p, "reason", err)
	return true, nil
}
