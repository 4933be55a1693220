package image

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImageInfo describes one entry of index.json, for listings.
type ImageInfo struct {
	// Tag is the entry's org.opencontainers.image.ref.name, or "".
	Tag string
	// Descriptor is the entry: an image manifest or an image index.
	Descriptor ocispec.Descriptor
	// Platforms are those of the manifests the entry leads to, in
	// index order; a manifest whose platform is unknown is left out.
	Platforms []ocispec.Platform
	// Size is the total size of the distinct blobs the entry
	// references: indexes, manifests, configs and layers.
	Size int64
}

// Indexer is a Source that can list its images, as a layout's
// index.json does: layouts, oci-archives and docker-archives are. A
// registry is not (it has tags, not an index).
type Indexer interface {
	Source
	// Index returns the source's index.json, or one made up for
	// the same purpose. Its slices are shared: do not modify them.
	Index() ocispec.Index
}

// Images describes every entry of src's index, in order. Entries of
// media types other than image manifests and indexes are listed with
// their own size only. where names src in messages.
func Images(ctx context.Context, src Indexer, where string) ([]ImageInfo, error) {
	top := src.Index().Manifests
	infos := make([]ImageInfo, 0, len(top))
	for _, desc := range top {
		info := ImageInfo{Tag: desc.Annotations[ocispec.AnnotationRefName], Descriptor: desc}
		if err := describe(ctx, src, &info, desc, map[digest.Digest]bool{}, 0); err != nil {
			name := info.Tag
			if name == "" {
				name = desc.Digest.String()
			}
			return nil, fmt.Errorf("list images of %q: %q: %w", where, name, err)
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// describe adds what desc references to info; seen holds the blobs
// already counted.
func describe(ctx context.Context, src Source, info *ImageInfo, desc ocispec.Descriptor, seen map[digest.Digest]bool, depth int) error {
	count := func(d ocispec.Descriptor) {
		if !seen[d.Digest] {
			seen[d.Digest] = true
			info.Size += d.Size
		}
	}
	count(desc)
	switch {
	case isIndex(desc.MediaType):
		if depth >= maxDepth {
			return fmt.Errorf("%w: image indexes nested more than %d deep", ErrInvalid, maxDepth)
		}
		idx, err := readIndex(ctx, src, desc)
		if err != nil {
			return err
		}
		for _, child := range idx.Manifests {
			if err := describe(ctx, src, info, child, seen, depth+1); err != nil {
				return err
			}
		}

	case isManifest(desc.MediaType):
		var m ocispec.Manifest
		if err := readJSON(ctx, src, "manifest", desc, &m); err != nil {
			return err
		}
		count(m.Config)
		for _, layer := range m.Layers {
			count(layer)
		}
		switch {
		case desc.Platform != nil:
			info.Platforms = append(info.Platforms, *desc.Platform)
		case isConfig(m.Config.MediaType):
			var c ocispec.Image
			if err := readJSON(ctx, src, "config", m.Config, &c); err != nil {
				return err
			}
			if c.OS != "" || c.Architecture != "" {
				info.Platforms = append(info.Platforms, c.Platform)
			}
		}
	}
	return nil
}
