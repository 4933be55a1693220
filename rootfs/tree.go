package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ocifs/ocifs/image"
	"github.com/ocifs/ocifs/internal/cachefile"
	"github.com/ocifs/ocifs/overlay"
)

// treeCache keeps merged trees on disk, one file per stack of layers,
// beside the layer indexes:
//
//	DIR/tree/v<overlay.FormatVersion>/sha256/<key>
//
// The key is the SHA-256 of overlay.RulesVersion and the layers'
// digests and diffIDs in order (treeKey): the entries of a layer are a
// function of its blob, so the same stack always merges to the same
// tree, whichever image lists it, while the merge rules stay the same.
// A tree merged by an ocifs with other rules has another key and is
// merged again, never served.
// A file is trusted only if overlay.Decode accepts it (magic, version,
// CRC-32C, every record in bounds), as index files are; a bad one is
// rebuilt and replaced. With lazy set, overlay.DecodeLazy checks only
// the header and the root, and the rest as it is used (Options.LazyTree).
// Writes are atomic (temporary file, fsync, rename) and need no lock:
// two processes merging the same stack write the same bytes.
type treeCache struct {
	dir    string
	logger *slog.Logger
	lazy   bool
}

// treeKey names the merged tree of layers.
func treeKey(layers []image.Layer) string {
	h := sha256.New()
	fmt.Fprintf(h, "ocifs merged tree v%d rules %d\n", overlay.FormatVersion, overlay.RulesVersion)
	for _, l := range layers {
		fmt.Fprintf(h, "%s %s\n", l.Descriptor.Digest, l.DiffID)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (c *treeCache) path(layers []image.Layer) string {
	return filepath.Join(c.dir, "tree", "v"+strconv.Itoa(overlay.FormatVersion), "sha256", treeKey(layers))
}

// load returns the cached tree of layers and the Mapping that holds
// it, or nils when there is no usable one (a file that is missing,
// unreadable or bad only means merging again; the reason is logged,
// and returned unless the file is missing).
// The file is mapped (cachefile.Map), populated unless lazy: Decode
// reads every byte of it at once, DecodeLazy the few blocks it is
// asked about. A copy would land in fresh memory, which on the VMs
// ocifs is measured on costs up to four times as much as the page-cache
// pages already there. The tree points into the Mapping, which must
// stay open while the tree or any name from it is used.
func (c *treeCache) load(layers []image.Layer) (*overlay.Tree, *cachefile.Mapping, error) {
	p := c.path(layers)
	m, err := cachefile.Map(p, cachefile.MapOptions{Populate: !c.lazy})
	if err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			return nil, nil, nil
		}
		c.logger.Info("merge again: cached tree unreadable", "path", p, "reason", err)
		return nil, nil, err
	}
	var t *overlay.Tree
	decode := overlay.Decode
	if c.lazy {
		decode = overlay.DecodeLazy
	}
	err = cachefile.CatchFault(func() (err error) {
		t, err = decode(m.Bytes())
		return err
	})
	if err == nil && t.Layers() != len(layers) {
		// The key names the layers, so only a file copied in from
		// elsewhere could disagree; every Node.Layer must name one.
		err = fmt.Errorf("tree of %d layers, image has %d", t.Layers(), len(layers))
	}
	if err != nil {
		m.Close()
		c.logger.Info("rebuild cached tree", "path", p, "reason", err)
		return nil, nil, err
	}
	return t, m, nil
}

// drop removes the cached tree of layers if overlay.Decode refuses it:
// for a mount whose lazily checked tree met damage, so that the next
// Open merges again. A file that passes, maybe one another process has
// just written, is kept.
func (c *treeCache) drop(layers []image.Layer) {
	p := c.path(layers)
	m, err := cachefile.Map(p, cachefile.MapOptions{Populate: true})
	if err != nil {
		return
	}
	err = cachefile.CatchFault(func() error {
		_, err := overlay.Decode(m.Bytes())
		return err
	})
	m.Close()
	if err == nil {
		return
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		c.logger.Warn("drop damaged cached tree", "path", p, "err", err)
		return
	}
	c.logger.Info("dropped damaged cached tree", "path", p, "reason", err)
}

// store writes t as the tree of layers and reports whether it did;
// failing only costs a merge next time, so it is logged, not returned.
func (c *treeCache) store(layers []image.Layer, t *overlay.Tree) bool {
	p := c.path(layers)
	b, err := t.MarshalBinary()
	if err == nil {
		err = cachefile.WriteAtomic(p, b)
	}
	if err != nil {
		c.logger.Warn("store merged tree", "path", p, "err", err)
		return false
	}
	return true
}
