package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// dockerManifestFile is the member of a docker save archive that lists
// its images.
const dockerManifestFile = "manifest.json"

// dockerEntry is one image of a docker-archive's manifest.json, as
// docker save, podman save and skopeo write it.
type dockerEntry struct {
	Config   string   // the config's member
	RepoTags []string // "REPO:TAG" names, possibly none
	Layers   []string // the uncompressed (or, from some tools, compressed) layer tars' members, lowest first
}

// DockerArchive is a docker-archive (docker save, podman save, skopeo
// copy ... docker-archive:) read in place. Each manifest.json entry is
// given the image model of a layout: a made-up Docker schema 2
// manifest whose config is the config member, digested here, and
// whose layers are the layer members. An uncompressed layer's digest
// is its diff_id from the config, which tarindex verifies when it
// indexes the layer; a compressed one's is the digest its member name
// holds (blobs/sha256/HEX, the newer docker save) or else one computed
// by hashing it once.
type DockerArchive struct {
	a       *archive
	entries []dockerEntry
	// images holds the made-up manifest descriptor of each entry,
	// annotated with the entry's first RepoTag.
	images []ocispec.Descriptor
	// manifests holds the made-up manifests by digest; blobs the
	// member of each config and layer.
	manifests map[digest.Digest][]byte
	blobs     map[digest.Digest]string
}

var _ Indexer = (*DockerArchive)(nil)

// OpenDockerArchive opens the docker-archive at path: it scans the
// tar's headers, reads manifest.json and each image's config, and
// looks at the first bytes of each layer to tell its compression.
func OpenDockerArchive(path string) (*DockerArchive, error) {
	a, err := openArchive(path)
	if err != nil {
		return nil, err
	}
	d := &DockerArchive{a: a, manifests: map[digest.Digest][]byte{}, blobs: map[digest.Digest]string{}}
	if err := d.load(); err != nil {
		a.close()
		return nil, fmt.Errorf("open archive %q: %w", path, err)
	}
	return d, nil
}

func (d *DockerArchive) load() error {
	data, err := d.a.readSmall(dockerManifestFile)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &d.entries); err != nil {
		return fmt.Errorf("%w: decode %q: %w", ErrBadArchive, d.a.where(dockerManifestFile), err)
	}
	if len(d.entries) == 0 {
		return fmt.Errorf("%w: %s lists no image", ErrNotFound, dockerManifestFile)
	}
	for i, e := range d.entries {
		desc, err := d.synthesize(e)
		if err != nil {
			return fmt.Errorf("image %d of %s: %w", i, dockerManifestFile, err)
		}
		d.images = append(d.images, desc)
	}
	return nil
}

// synthesize makes up e's manifest and records its blobs.
func (d *DockerArchive) synthesize(e dockerEntry) (ocispec.Descriptor, error) {
	cfgName, err := cleanMember(e.Config)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	cfgData, err := d.a.readSmall(cfgName)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("read config: %w", err)
	}
	cfgDigest := digest.FromBytes(cfgData)
	// docker save names the config after its digest ("HEX.json" or
	// "blobs/sha256/HEX"): that name must hold.
	if named := nameDigest(cfgName); named != "" && named != cfgDigest {
		return ocispec.Descriptor{}, fmt.Errorf("read config %q: %w: hashes to %s", d.a.where(cfgName), ErrDigestMismatch, cfgDigest)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cfgData, &cfg); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("read config: decode %q: %w", d.a.where(cfgName), err)
	}
	if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
		return ocispec.Descriptor{}, fmt.Errorf("%w: %d layers in %s, %d diff_ids in the config",
			ErrInvalid, len(e.Layers), dockerManifestFile, len(cfg.RootFS.DiffIDs))
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: MediaTypeDockerManifest,
		Config:    ocispec.Descriptor{MediaType: MediaTypeDockerConfig, Digest: cfgDigest, Size: int64(len(cfgData))},
		Layers:    make([]ocispec.Descriptor, len(e.Layers)),
	}
	d.blobs[cfgDigest] = cfgName
	for i, l := range e.Layers {
		name, err := cleanMember(l)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		desc, err := d.layerDescriptor(name, cfg.RootFS.DiffIDs[i])
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("layer %d: %w", i, err)
		}
		m.Layers[i] = desc
		if _, ok := d.blobs[desc.Digest]; !ok {
			d.blobs[desc.Digest] = name
		}
	}
	data, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if len(e.RepoTags) > 0 {
		desc.Annotations = map[string]string{ocispec.AnnotationRefName: e.RepoTags[0]}
	}
	d.manifests[desc.Digest] = data
	return desc, nil
}

// Magic numbers of the compressed layers some tools put in a
// docker-archive (RFC 1952, RFC 8878); docker save writes plain tars.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// layerDescriptor describes layer member name, whose config diff_id is
// diffID.
func (d *DockerArchive) layerDescriptor(name string, diffID digest.Digest) (ocispec.Descriptor, error) {
	b, err := d.a.open(name)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer b.Close()
	head := make([]byte, 4)
	n, _ := b.ReadAt(head, 0)
	head = head[:n]
	desc := ocispec.Descriptor{MediaType: MediaTypeDockerLayer, Digest: diffID, Size: b.Size()}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		desc.MediaType = MediaTypeDockerLayerGzip
	case bytes.HasPrefix(head, zstdMagic):
		desc.MediaType = ocispec.MediaTypeImageLayerZstd
	default:
		// The sha256 of an uncompressed layer is its diff_id.
		return desc, checkDigest(diffID)
	}
	if desc.Digest = nameDigest(name); desc.Digest != "" {
		return desc, nil // tarindex verifies it as it indexes the layer
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(b, 0, b.Size())); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("hash %q: %w", d.a.where(name), err)
	}
	desc.Digest = digest.NewDigest(digest.SHA256, h)
	return desc, nil
}

// nameDigest returns the sha256 digest a member's name holds, as
// "blobs/sha256/HEX" or "HEX.json", or "".
func nameDigest(name string) digest.Digest {
	base := strings.TrimSuffix(path.Base(name), ".json")
	if path.Base(name) == "layer.tar" {
		return "" // the legacy layer directory is a v1 id, not a digest
	}
	if len(base) != 64 {
		return ""
	}
	if _, err := hex.DecodeString(base); err != nil || strings.ToLower(base) != base {
		return ""
	}
	return digest.NewDigestFromEncoded(digest.SHA256, base)
}

// Index returns an image index made up of each manifest.json entry's
// manifest, in order, tagged with its first RepoTag.
func (d *DockerArchive) Index() ocispec.Index {
	return ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: d.images}
}

// Resolve returns the made-up manifest of the image ref names: by
// ref.Tag, a name among the RepoTags (compared as docker compares
// names: "busybox" is "docker.io/library/busybox:latest") or "@N", the
// N-th entry of manifest.json from 0; by ref.Digest, a made-up
// manifest's; or the only image.
func (d *DockerArchive) Resolve(ctx context.Context, ref Reference) ([]ocispec.Descriptor, error) {
	switch {
	case ref.Digest != "":
		for _, desc := range d.images {
			if desc.Digest == ref.Digest {
				return []ocispec.Descriptor{desc}, nil
			}
		}
		return nil, fmt.Errorf("%w: no image %q in the archive", ErrNotFound, ref.Digest)

	case strings.HasPrefix(ref.Tag, "@"):
		n, err := strconv.Atoi(ref.Tag[1:])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: image index %q, want @N", ErrNotFound, ref.Tag)
		}
		if n >= len(d.images) {
			return nil, fmt.Errorf("%w: no image @%d, %s lists %d", ErrNotFound, n, dockerManifestFile, len(d.images))
		}
		return d.images[n : n+1], nil

	case ref.Tag != "":
		want := normalizeName(ref.Tag)
		var tags []string
		for i, e := range d.entries {
			for _, t := range e.RepoTags {
				if t == ref.Tag || normalizeName(t) == want {
					return d.images[i : i+1], nil
				}
				tags = append(tags, fmt.Sprintf("%q", t))
			}
		}
		if len(tags) == 0 {
			tags = []string{"none"}
		}
		return nil, fmt.Errorf("%w: no tag %q (tags: %s)", ErrNotFound, ref.Tag, strings.Join(tags, ", "))
	}
	if len(d.images) == 1 {
		return d.images, nil
	}
	return nil, fmt.Errorf("%w (%d images: pick one as :REPO:TAG or :@N)", ErrAmbiguous, len(d.images))
}

// normalizeName returns name as a full docker reference with a tag, or
// name itself if it is not one.
func normalizeName(name string) string {
	n, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name
	}
	return reference.TagNameOnly(n).String()
}

// ReadBlob reads a made-up manifest, or a config from its member,
// verified against desc's digest and size.
func (d *DockerArchive) ReadBlob(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if data, ok := d.manifests[desc.Digest]; ok {
		if int64(len(data)) != desc.Size {
			return nil, fmt.Errorf("read blob %q: %w: %d bytes, descriptor says %d", desc.Digest, ErrBlobSize, len(data), desc.Size)
		}
		return bytes.Clone(data), nil
	}
	return readBlob(ctx, d, desc)
}

// OpenBlob opens the config or layer desc names, in place in the
// archive, checking its size.
func (d *DockerArchive) OpenBlob(ctx context.Context, desc ocispec.Descriptor) (Blob, error) {
	if err := checkDigest(desc.Digest); err != nil {
		return nil, fmt.Errorf("open blob %q: %w", desc.Digest, err)
	}
	name, ok := d.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("open blob %q: %w", desc.Digest, ErrBlobNotFound)
	}
	b, err := d.a.open(name)
	if err != nil {
		return nil, fmt.Errorf("open blob %q: %w", desc.Digest, err)
	}
	if b.Size() != desc.Size {
		b.Close()
		return nil, fmt.Errorf("open blob %q: %w: %q has %d bytes, descriptor says %d",
			desc.Digest, ErrBlobSize, d.a.where(name), b.Size(), desc.Size)
	}
	return b, nil
}

// blobLocation names blob dg's member for messages.
func (d *DockerArchive) blobLocation(dg digest.Digest) string {
	if name, ok := d.blobs[dg]; ok {
		return d.a.where(name)
	}
	return dg.String()
}

// Path returns the archive's file.
func (d *DockerArchive) Path() string { return d.a.path }

// Close releases the archive's file once every blob opened from it is
// closed too.
func (d *DockerArchive) Close() error { return d.a.close() }
