package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ocifs/ocifs/image"
	"github.com/ocifs/ocifs/internal/cachefile"
	"github.com/ocifs/ocifs/overlay"
	"github.com/ocifs/ocifs/tarindex"
)

// Options tunes Open. The zero value works.
type Options struct {
	Platform string // "os/arch[/variant]"; empty means the host's
	// Registry tunes how a docker:// reference is read.
	Registry image.RegistryOptions
	CacheDir string       // index cache; empty means tarindex.DefaultCacheDir
	Logger   *slog.Logger // nil discards

	// Progress, when set, is called as layer i's blob is read while its
	// index is built: n compressed bytes so far. Calls for different
	// layers come from different goroutines.
	Progress func(i int, n int64)

	// Parallel bounds how many layers are indexed at once; zero means
	// GOMAXPROCS.
	Parallel int

	// LazyTree checks a cached merged tree as it is used
	// (overlay.DecodeLazy) rather than all of it before Open returns,
	// so that opening costs the same whatever the image's size: for a
	// mount, which reads a few directories before its first byte.
	// Damage found later fails the calls that meet it (their errors
	// wrap overlay.ErrCorrupt) instead of making Open merge again; a
	// later Open without LazyTree (ocifs index) finds it and repairs
	// the cache.
	LazyTree bool

	// Verify checks every byte of every cache file Open uses before
	// trusting it, instead of what a mount needs: the layer indexes
	// with tarindex.Verify (every window inflated and checked, the
	// entries decoded), the merged tree with overlay.Decode (LazyTree
	// is then ignored). A file that fails is rebuilt and replaced, as
	// one that fails the usual checks is. For `ocifs index`, which
	// repairs the cache ahead of a mount.
	Verify bool

	// Repaired, when set, is told of each cache file that was there
	// but unusable and has been rebuilt and replaced. Calls may come
	// from several goroutines at once.
	Repaired func(Repair)
}

// Repair is a cache file Open found unusable, rebuilt and replaced.
type Repair struct {
	// Layer is the 1-based number of the layer whose index was
	// repaired (the lowest, if the stack lists its blob twice); 0 for
	// the merged tree.
	Layer  int
	Digest digest.Digest // the layer's blob digest; empty for the tree
	Path   string        // the cache file
	Reason error         // what was wrong with it
}

// String describes r as `ocifs index` reports it: "index of layer 2
// (sha256:...): reason", or "merged tree (path): reason".
func (r Repair) String() string {
	if r.Layer == 0 {
		return fmt.Sprintf("merged tree (%s): %v", r.Path, r.Reason)
	}
	return fmt.Sprintf("index of layer %d (%s): %v", r.Layer, r.Digest, r.Reason)
}

// The decompressed chunks the layers' readers keep are bounded by
// cacheBytes in all, whatever the number of layers: the readers share
// one tarindex.ChunkCache, which keeps up to tarindex.ReaderReserve of
// each layer's most recent chunks before others' so that a few
// sequential readers per layer still find the chunks they just
// decoded (what a per-layer minimum of 4 MiB did, at up to 80 MiB for
// 20 layers). The kernel's page cache keeps file data
// across opens anyway; this cache only saves decoding the rest of a
// chunk for the next read. 24 MiB reads the 100k-file benchmark image
// as fast as 32 MiB did (21.4–21.9 s against 21.6 s for every file,
// fresh mount) with a daemon 12 MiB smaller (docs/benchmarks.md).
const cacheBytes = 24 << 20

// RootFS is an opened image. It is safe for concurrent use.
type RootFS struct {
	Image  *image.Image
	Layers []image.Layer // in manifest order, lowest first
	// Indexes holds one index per layer. When the merged tree came
	// from the cache they may hold only what reading needs, without
	// entries: Entries loads those.
	Indexes []*tarindex.Index
	Tree    *overlay.Tree        // the merged tree
	readers []*tarindex.Reader   // one per layer
	chunks  *tarindex.ChunkCache // shared by readers
	blobs   []image.Blob         // one per layer
	cache   *tarindex.Cache
	trees   *treeCache
	treeMap *cachefile.Mapping // holds Tree when it came from the cache
	dropped []atomic.Bool      // per layer: a read met index damage, the file was dealt with
}

// Open resolves ref and prepares its merged tree.
func Open(ctx context.Context, ref string, opts Options) (*RootFS, error) {
	img, err := image.Open(ctx, ref, image.Options{Platform: opts.Platform, Registry: opts.Registry})
	if err != nil {
		return nil, err
	}
	return OpenImage(ctx, img, opts)
}

// OpenImage prepares the merged tree of an already resolved image.
//
// The merged tree of a stack of layers is cached beside the layer
// indexes (see treeCache): when it is there, the layers' entries are
// not even decoded, only the access points their readers need, and
// opening costs a check of the tree file (7–8 ms per 100k files; with
// LazyTree, of the few blocks used) instead of decoding and merging
// every entry (~200 ms).
// Otherwise the indexes are loaded or built, merged, and the tree is
// stored.
//
// OpenImage takes img over: the RootFS's Close closes it (and its
// Source), and so does an OpenImage that fails.
func OpenImage(ctx context.Context, img *image.Image, opts Options) (_ *RootFS, err error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	layers, err := img.Layers()
	if err != nil {
		img.Close()
		return nil, err
	}
	r := &RootFS{
		Image:   img,
		Layers:  layers,
		Indexes: make([]*tarindex.Index, len(layers)),
		readers: make([]*tarindex.Reader, len(layers)),
		blobs:   make([]image.Blob, len(layers)),
		cache:   &tarindex.Cache{Dir: opts.CacheDir, Logger: logger},
		dropped: make([]atomic.Bool, len(layers)),
	}
	if opts.Repaired != nil {
		r.cache.Repaired = func(desc ocispec.Descriptor, reason error) {
			i := slices.IndexFunc(layers, func(l image.Layer) bool { return l.Descriptor.Digest == desc.Digest })
			p, _ := r.cache.Path(desc)
			opts.Repaired(Repair{Layer: i + 1, Digest: desc.Digest, Path: p, Reason: reason})
		}
	}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	for i, l := range layers {
		if r.blobs[i], err = img.Source.OpenBlob(ctx, l.Descriptor); err != nil {
			return nil, fmt.Errorf("open layer %d: %w", i+1, err)
		}
	}
	trees := &treeCache{dir: r.cache.Dir, logger: logger, lazy: opts.LazyTree && !opts.Verify}
	r.trees = trees
	if trees.dir == "" {
		trees.dir = tarindex.DefaultCacheDir()
	}
	// Check the cached tree while the layers' access points load, as
	// if it were there (it usually is): on two cores the two overlap.
	var tree *overlay.Tree
	var treeReason error // why a cached tree was unusable
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		tree, r.treeMap, treeReason = trees.load(layers)
	}()
	err = r.index(ctx, opts)
	<-loaded
	if err != nil {
		return nil, err
	}
	r.chunks = tarindex.NewChunkCache(cacheBytes)
	ro := tarindex.ReaderOptions{Cache: r.chunks}
	for i, ix := range r.Indexes {
		r.readers[i] = tarindex.NewReader(ix, r.blobs[i], ro)
	}
	if tree == nil {
		merge := make([]overlay.Layer, len(layers))
		for i, l := range layers {
			entries, err := r.Entries(ctx, i)
			if err != nil {
				return nil, err
			}
			merge[i] = overlay.Layer{Name: l.Descriptor.Digest.String(), Entries: entries}
		}
		if tree, err = overlay.Merge(merge, overlay.Options{Logger: logger}); err != nil {
			return nil, fmt.Errorf("merge layers of %s: %w", img.Ref, err)
		}
		if trees.store(layers, tree) {
			if treeReason != nil && opts.Repaired != nil {
				opts.Repaired(Repair{Path: trees.path(layers), Reason: treeReason})
			}
			// The tree holds all a mount needs, and the cache the
			// entries if anyone asks (Entries): a daemon need not
			// keep ~140 bytes per entry for its lifetime.
			for _, ix := range r.Indexes {
				ix.Entries = nil
			}
		}
	}
	r.Tree = tree
	return r, nil
}

// index loads or builds every layer's index, at most opts.Parallel at
// once; the first error cancels the others. A cached index is loaded
// without its entries (Entries loads them if they are needed); one
// built now has them.
func (r *RootFS) index(ctx context.Context, opts Options) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, l := range r.Layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				return
			}
			bo := tarindex.BuildOptions{DiffID: l.DiffID}
			if opts.Progress != nil {
				bo.Progress = func(n int64) { opts.Progress(i, n) }
			}
			get := r.cache.Access
			if opts.Verify {
				get = r.cache.Verify
			}
			ix, err := get(ctx, r.blobs[i], l.Descriptor, bo)
			if err != nil {
				cancel(fmt.Errorf("layer %d: %w", i+1, err))
				return
			}
			r.Indexes[i] = ix
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// Entries returns layer i's entries in tar order (lowest layer 0),
// loading its full index from the cache if Open did not need them.
func (r *RootFS) Entries(ctx context.Context, i int) ([]tarindex.Entry, error) {
	if i < 0 || i >= len(r.Layers) {
		return nil, fmt.Errorf("entries of layer %d: no such layer", i+1)
	}
	if ix := r.Indexes[i]; ix.Entries != nil || ix.Summary().Entries == 0 {
		return ix.Entries, nil
	}
	l := r.Layers[i]
	ix, err := r.cache.Index(ctx, r.blobs[i], l.Descriptor, tarindex.BuildOptions{DiffID: l.DiffID})
	if err != nil {
		return nil, fmt.Errorf("entries of layer %d: %w", i+1, err)
	}
	return ix.Entries, nil
}

// ErrNotRegular is returned when reading a node that has no contents.
var ErrNotRegular = errors.New("rootfs: not a regular file")

// ReadAt reads the contents of a regular file node, like io.ReaderAt.
func (r *RootFS) ReadAt(n *overlay.Node, p []byte, off int64) (int, error) {
	if n.Layer < 0 || n.Entry == nil || n.Entry.Type != tar.TypeReg {
		return 0, fmt.Errorf("read node %d: %w", n.ID, ErrNotRegular)
	}
	k, err := r.readers[n.Layer].ReadAt(n.Entry, p, off)
	if errors.Is(err, tarindex.ErrCorrupt) && !r.dropped[n.Layer].Swap(true) {
		// The index was damaged after it was loaded, or where loading
		// does not look (a window): make the next Open rebuild it
		// rather than meet the same damage.
		r.cache.Drop(r.Layers[n.Layer].Descriptor)
	}
	return k, err
}

// Close releases the readers, the blobs, the tree and the image's
// source: no node or name from Tree may be used afterwards.
func (r *RootFS) Close() error {
	var errs []error
	for _, rd := range r.readers {
		if rd != nil {
			errs = append(errs, rd.Close())
		}
	}
	for _, b := range r.blobs {
		if b != nil {
			errs = append(errs, b.Close())
		}
	}
	if r.treeMap != nil {
		if r.Tree != nil && r.Tree.Err() != nil {
			// A lazily checked tree met damage: make the next Open
			// merge again rather than meet it too.
			r.trees.drop(r.Layers)
		}
		errs = append(errs, r.treeMap.Close())
	}
	if r.Image != nil {
		errs = append(errs, r.Image.Close())
	}
	return errors.Join(errs...)
}
