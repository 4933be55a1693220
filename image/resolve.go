package image

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxDepth bounds how deep image indexes may nest; real layouts use
// one or two levels.
const maxDepth = 8

// Options tunes Open and Resolve. The zero value selects the host
// platform.
type Options struct {
	// Platform selects among the manifests of an image index, as
	// "os/arch[/variant]". Empty means the host platform, and then a
	// reference that leads to a single manifest is taken whatever its
	// platform: its files can be read on any host. A Platform given
	// explicitly must match.
	Platform string
	// Registry tunes how a docker:// reference is read (credentials,
	// certificates, the cache of fetched ranges); other sources
	// ignore it.
	Registry RegistryOptions
}

// Image is one resolved image: a manifest, its config and its layer
// descriptors.
type Image struct {
	// Source is where the image's blobs are read from; Close releases
	// it.
	Source Source
	Ref    Reference
	// Descriptor is the manifest's descriptor, as listed by index.json
	// or by the image index it was selected from.
	Descriptor       ocispec.Descriptor
	Manifest         ocispec.Manifest
	ConfigDescriptor ocispec.Descriptor
	Config           ocispec.Image
	// Platform is the config's os, architecture and variant, or the
	// descriptor's platform if the config has none.
	Platform ocispec.Platform
}

// Layer is one layer of an image, lowest first.
type Layer struct {
	Descriptor ocispec.Descriptor
	// DiffID is the digest of the uncompressed tar stream
	// (config.md, "rootfs").
	DiffID      digest.Digest
	Compression Compression
}

// Close releases the image's Source: no blob of it may be read
// afterwards.
func (img *Image) Close() error { return img.Source.Close() }

// Resolve finds the image ref names in src: by tag, by digest or as
// the only image (src.Resolve); through nested image indexes down to
// the manifest that matches opts.Platform, taking the first of equal
// matches (image-index.md, "manifests"). The Image reads from src but
// does not own it: closing the Image closes src.
func Resolve(ctx context.Context, src Source, ref Reference, opts Options) (*Image, error) {
	img, err := resolve(ctx, src, ref, opts)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", ref.String(), err)
	}
	return img, nil
}

func resolve(ctx context.Context, src Source, ref Reference, opts Options) (*Image, error) {
	want, explicit := HostPlatform(), opts.Platform != ""
	if explicit {
		var err error
		if want, err = ParsePlatform(opts.Platform); err != nil {
			return nil, err
		}
	}
	top, err := src.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	manifests, err := expandManifests(ctx, src, top, 0)
	if err != nil {
		return nil, err
	}
	if len(manifests) == 1 && !explicit {
		return loadImage(ctx, src, ref, manifests[0])
	}

	var best *Image
	bestRank := 0
	var seen []string
	for _, desc := range manifests {
		img, have, err := platformOf(ctx, src, ref, desc)
		if err != nil {
			return nil, err
		}
		seen = append(seen, FormatPlatform(have))
		rank, ok := matchPlatform(want, have)
		if ok && (best == nil || rank < bestRank) {
			if img == nil {
				if img, err = loadImage(ctx, src, ref, desc); err != nil {
					return nil, err
				}
			}
			best, bestRank = img, rank
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: want %s, have %s", ErrPlatformNotFound, FormatPlatform(want), strings.Join(seen, ", "))
	}
	return best, nil
}

// platformOf returns the normalized platform of the manifest desc
// names: the one its index lists, or else its config's, for which it
// loads the image and returns it too.
func platformOf(ctx context.Context, src Source, ref Reference, desc ocispec.Descriptor) (*Image, ocispec.Platform, error) {
	if desc.Platform != nil {
		return nil, normalizePlatform(*desc.Platform), nil
	}
	img, err := loadImage(ctx, src, ref, desc)
	if err != nil {
		return nil, ocispec.Platform{}, err
	}
	return img, normalizePlatform(img.Platform), nil
}

// listRefs lists the distinct tags of descs for messages, and the
// digests of untagged entries as "@DIGEST".
func listRefs(descs []ocispec.Descriptor) string {
	var refs []string
	seen := map[string]bool{}
	for _, d := range descs {
		r := fmt.Sprintf("%q", d.Annotations[ocispec.AnnotationRefName])
		if r == `""` {
			r = "@" + d.Digest.String()
		}
		if !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	if len(refs) == 0 {
		return "none"
	}
	return strings.Join(refs, ", ")
}

// findDigest looks for d among descs and below the image indexes they
// list.
func findDigest(ctx context.Context, src Source, descs []ocispec.Descriptor, d digest.Digest, depth int) (ocispec.Descriptor, bool, error) {
	for _, desc := range descs {
		if desc.Digest == d {
			return desc, true, nil
		}
	}
	if depth >= maxDepth {
		return ocispec.Descriptor{}, false, nil
	}
	for _, desc := range descs {
		if !isIndex(desc.MediaType) {
			continue
		}
		idx, err := readIndex(ctx, src, desc)
		if err != nil {
			return ocispec.Descriptor{}, false, err
		}
		if found, ok, err := findDigest(ctx, src, idx.Manifests, d, depth+1); ok || err != nil {
			return found, ok, err
		}
	}
	return ocispec.Descriptor{}, false, nil
}

// expandManifests expands image indexes in descs, depth first, into the
// image manifests they list. Entries of other media types (artifacts,
// Docker schema 1) are skipped; if nothing is left, the error names
// them.
func expandManifests(ctx context.Context, src Source, descs []ocispec.Descriptor, depth int) ([]ocispec.Descriptor, error) {
	var out []ocispec.Descriptor
	var skipped []string
	for _, desc := range descs {
		switch {
		case isManifest(desc.MediaType):
			out = append(out, desc)
		case isIndex(desc.MediaType):
			if depth >= maxDepth {
				return nil, fmt.Errorf("%w: image indexes nested more than %d deep", ErrInvalid, maxDepth)
			}
			idx, err := readIndex(ctx, src, desc)
			if err != nil {
				return nil, err
			}
			sub, err := expandManifests(ctx, src, idx.Manifests, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		default:
			skipped = append(skipped, fmt.Sprintf("%q", desc.MediaType))
		}
	}
	if len(out) == 0 && len(skipped) > 0 {
		return nil, fmt.Errorf("%w %s, want an image manifest or index", ErrUnsupportedMediaType, strings.Join(skipped, ", "))
	}
	return out, nil
}

// readIndex reads and checks the image index desc names.
func readIndex(ctx context.Context, src Source, desc ocispec.Descriptor) (ocispec.Index, error) {
	var idx ocispec.Index
	if err := readJSON(ctx, src, "index", desc, &idx); err != nil {
		return idx, err
	}
	if err := checkIndex(idx); err != nil {
		return idx, fmt.Errorf("read index %q: %w", desc.Digest, err)
	}
	if err := checkMediaType(idx.MediaType, desc.MediaType); err != nil {
		return idx, fmt.Errorf("read index %q: %w", desc.Digest, err)
	}
	return idx, nil
}

// loadImage reads the manifest desc names and its config.
func loadImage(ctx context.Context, src Source, ref Reference, desc ocispec.Descriptor) (*Image, error) {
	img := &Image{Source: src, Ref: ref, Descriptor: desc}
	m := &img.Manifest
	if err := readJSON(ctx, src, "manifest", desc, m); err != nil {
		return nil, err
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("read manifest %q: %w: schemaVersion %d, want 2", desc.Digest, ErrInvalid, m.SchemaVersion)
	}
	if err := checkMediaType(m.MediaType, desc.MediaType); err != nil {
		return nil, fmt.Errorf("read manifest %q: %w", desc.Digest, err)
	}
	if !isConfig(m.Config.MediaType) {
		return nil, fmt.Errorf("read manifest %q: %w %q for a config: not a container image", desc.Digest, ErrUnsupportedMediaType, m.Config.MediaType)
	}

	img.ConfigDescriptor = m.Config
	c := &img.Config
	if err := readJSON(ctx, src, "config", m.Config, c); err != nil {
		return nil, err
	}
	if c.RootFS.Type != "layers" {
		return nil, fmt.Errorf("read config %q: %w: rootfs.type %q, want \"layers\"", m.Config.Digest, ErrInvalid, c.RootFS.Type)
	}
	img.Platform = c.Platform
	if c.OS == "" && c.Architecture == "" && desc.Platform != nil {
		img.Platform = *desc.Platform
	}
	return img, nil
}

// readJSON reads the small blob desc names from src, verified, and
// decodes it into v. what names the object for messages ("manifest").
func readJSON(ctx context.Context, src Source, what string, desc ocispec.Descriptor, v any) error {
	data, err := src.ReadBlob(ctx, desc)
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("read %s %q: decode %q: %w", what, desc.Digest, location(src, desc.Digest), err)
	}
	return nil
}

// checkMediaType checks a manifest's or index's own mediaType against
// its descriptor's; the field is optional in older documents
// (manifest.md, "mediaType").
func checkMediaType(own, listed string) error {
	if own != "" && own != listed {
		return fmt.Errorf("%w: media type %q, descriptor says %q", ErrInvalid, own, listed)
	}
	return nil
}

// Layers returns the image's layers, lowest first, with their diff_ids
// and compression. It fails if the config lists a different number of
// diff_ids than the manifest lists layers (config.md, "rootfs"), or on
// a layer media type ocifs cannot read.
func (img *Image) Layers() ([]Layer, error) {
	descs, ids := img.Manifest.Layers, img.Config.RootFS.DiffIDs
	if len(descs) != len(ids) {
		return nil, fmt.Errorf("list layers of %q: %w: %d layers in the manifest, %d diff_ids in the config",
			img.Ref.String(), ErrInvalid, len(descs), len(ids))
	}
	layers := make([]Layer, len(descs))
	for i, d := range descs {
		c, err := LayerCompression(d.MediaType)
		if err == nil {
			err = checkDigest(d.Digest)
		}
		if err == nil {
			err = checkDigest(ids[i])
		}
		if err != nil {
			return nil, fmt.Errorf("list layers of %q: layer %d: %w", img.Ref.String(), i, err)
		}
		layers[i] = Layer{Descriptor: d, DiffID: ids[i], Compression: c}
	}
	return layers, nil
}
