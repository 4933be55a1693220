package tarindex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ocifs/ocifs/internal/cachefile"
)

// Cache keeps encoded indexes on disk, one file per blob digest and
// format version, so a layer shared by many images is indexed once.
//
// A file is trusted only if it decodes (magic, version, CRC-32C, every
// field) and names the same digest, size and compression as the
// descriptor, and the blob still has that size; otherwise the index is
// rebuilt and the file replaced. Files are written to a temporary name in
// the same directory, synced and renamed, so readers see the old file or
// the new one, never a partial one; an advisory lock makes a second
// process wait for the first instead of indexing the same blob twice
// (internal/cachefile does both). Files are mapped, not read: an Index
// loaded from a gzip layer's file keeps it mapped while it is
// reachable.
//
// Storing is best effort: if the directory is not writable, Index still
// returns the index it built and reports the store error to Logger.
type Cache struct {
	// Dir is the cache directory; empty means DefaultCacheDir().
	Dir string
	// Logger, when set, receives store failures (at warning level) and
	// rebuilds of unusable cache files (at info level).
	Logger *slog.Logger
	// Repaired, when set, is called after a cache file that was there
	// but unusable (reason says why) has been rebuilt and replaced: for
	// a caller that reports repairs, as `ocifs index` does. It is not
	// called when the rebuilt index could not be stored, nor for a file
	// that was missing. Calls for different blobs may be concurrent.
	Repaired func(desc ocispec.Descriptor, reason error)
}

// DefaultCacheDir returns $OCIFS_CACHE_DIR, else $XDG_CACHE_HOME/ocifs,
// else ~/.cache/ocifs.
func DefaultCacheDir() string {
	if d := os.Getenv("OCIFS_CACHE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "ocifs")
	}
	if d, err := os.UserHomeDir(); err == nil {
		return filepath.Join(d, ".cache", "ocifs")
	}
	return filepath.Join(os.TempDir(), "ocifs-cache")
}

func (c *Cache) dir() string {
	if c.Dir != "" {
		return c.Dir
	}
	return DefaultCacheDir()
}

// Path returns the file that holds the index of the blob with desc's
// digest: DIR/index/v<FormatVersion>/<algorithm>/<hex>.
func (c *Cache) Path(desc ocispec.Descriptor) (string, error) {
	if err := desc.Digest.Validate(); err != nil {
		return "", fmt.Errorf("cache path of %q: %w", desc.Digest, err)
	}
	return filepath.Join(c.dir(), "index", "v"+strconv.Itoa(FormatVersion), string(desc.Digest.Algorithm()), desc.Digest.Encoded()), nil
}

// Index returns the index of blob, from the cache when a valid file is
// there, else built with Build and stored.
func (c *Cache) Index(ctx context.Context, blob io.ReaderAt, desc ocispec.Descriptor, opts BuildOptions) (*Index, error) {
	return c.get(ctx, blob, desc, opts, Decode)
}

// Access is Index for callers that get the entries elsewhere (a cached
// merged tree): a cached file is loaded with DecodeAccess, so the
// Index's Entries is nil, at a fraction of the cost of decoding them. It
// checks the file against desc, opts.DiffID and the blob exactly as
// Index does. When nothing valid is cached it builds, stores and returns
// the full index, Entries included: callers must not rely on Entries
// being nil, nor on it being set (use Index for that).
func (c *Cache) Access(ctx context.Context, blob io.ReaderAt, desc ocispec.Descriptor, opts BuildOptions) (*Index, error) {
	return c.get(ctx, blob, desc, opts, DecodeAccess)
}

// get returns the index of blob from the cache file, decoded with
// decode, or builds and stores it.
func (c *Cache) get(ctx context.Context, blob io.ReaderAt, desc ocispec.Descriptor, opts BuildOptions, decode func([]byte) (*Index, error)) (*Index, error) {
	p, err := c.Path(desc)
	if err != nil {
		return nil, err
	}
	var reason error // why the file there is unusable; nil if missing
	if ix, err := c.load(p, blob, desc, opts, decode); err == nil {
		return ix, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		c.log(slog.LevelInfo, "rebuild cached index", "path", p, "reason", err)
		reason = err
	}

	// Take the lock, then look again: another process may have built
	// it while we waited.
	unlock, lerr := cachefile.Lock(ctx, p+".lock")
	if lerr == nil {
		defer unlock()
		if ix, err := c.load(p, blob, desc, opts, decode); err == nil {
			return ix, nil
		}
	} else if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	ix, err := Build(ctx, blob, desc, opts)
	if err != nil {
		return nil, err
	}
	b, err := ix.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode index of %s: %w", desc.Digest, err)
	}
	ix.encodedSize = len(b)
	if err := cachefile.WriteAtomic(p, b); err != nil {
		c.log(slog.LevelWarn, "store index", "path", p, "err", err)
	} else if reason != nil && c.Repaired != nil {
		c.Repaired(desc, reason)
	}
	return ix, nil
}

// load maps, decodes and checks a cache file. The file is mapped rather
// than read (cachefile.Map says why); only the gzip windows stay in the
// mapping, everything else Decode copies, so an index without windows
// unmaps it at once.
func (c *Cache) load(p string, blob io.ReaderAt, desc ocispec.Descriptor, opts BuildOptions, decode func([]byte) (*Index, error)) (*Index, error) {
	f, err := cachefile.Map(p, cachefile.MapOptions{})
	if err != nil {
		return nil, err
	}
	var ix *Index
	err = cachefile.CatchFault(func() (err error) {
		ix, err = decode(f.Bytes())
		return err
	})
	if err == nil {
		err = c.check(ix, blob, desc, opts)
	}
	if err != nil || ix.windows == nil {
		f.Close()
	} else {
		ix.file = f
		// From now on only the windows of the spans read are needed:
		// what decode touched need not count as resident.
		f.Release()
	}
	if err != nil {
		return nil, err
	}
	ix.MediaType = desc.MediaType
	return ix, nil
}

// check reports whether a decoded cache file is the index of blob.
func (c *Cache) check(ix *Index, blob io.ReaderAt, desc ocispec.Descriptor, opts BuildOptions) error {
	comp, err := CompressionOf(desc.MediaType)
	if err != nil {
		return err
	}
	switch {
	case ix.Digest != desc.Digest:
		return fmt.Errorf("cached index is for %s", ix.Digest)
	case ix.BlobSize != desc.Size:
		return fmt.Errorf("cached index is for a blob of %d bytes, descriptor says %d", ix.BlobSize, desc.Size)
	case ix.compression != comp:
		return fmt.Errorf("cached index is for %s, media type %q says %s", ix.compression, desc.MediaType, comp)
	case opts.DiffID != "" && ix.DiffID != opts.DiffID:
		return fmt.Errorf("cached index has diffID %s, want %s", ix.DiffID, opts.DiffID)
	case !hasSize(blob, desc.Size):
		return fmt.Errorf("blob is not %d bytes long", desc.Size)
	}
	return nil
}

// hasSize reports whether blob is exactly size bytes long, by reading
// its last byte and the byte after.
func hasSize(blob io.ReaderAt, size int64) bool {
	var b [1]byte
	if size > 0 {
		if n, _ := blob.ReadAt(b[:], size-1); n != 1 {
			return false
		}
	}
	n, err := blob.ReadAt(b[:], size)
	return n == 0 && err == io.EOF
}

func (c *Cache) log(level slog.Level, msg string, args ...any) {
	if c.Logger != nil {
		c.Logger.Log(context.Background(), level, msg, args...)
	}
}
