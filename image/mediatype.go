package image

import (
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker media types that skopeo and docker save put into layouts; OCI
// readers accept them as equivalent of the OCI types (media-types.md,
// "Compatibility Matrix").
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	// MediaTypeDockerLayer is an uncompressed Docker layer, as the
	// layer.tar members of a docker save archive are.
	MediaTypeDockerLayer = "application/vnd.docker.image.rootfs.diff.tar"
	// MediaTypeDockerForeignLayerGzip is Docker's non-distributable
	// layer (Windows base layers), usually absent from the layout.
	MediaTypeDockerForeignLayerGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// Compression is how a layer's tar stream is compressed.
type Compression int

const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

// String returns "uncompressed", "gzip" or "zstd".
func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "uncompressed"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// layerCompression maps each layer media type ocifs can read to its
// compression (media-types.md). The non-distributable types are
// deprecated but still read: the blob may well be in the layout.
var layerCompression = map[string]Compression{
	ocispec.MediaTypeImageLayer:                     Uncompressed,
	ocispec.MediaTypeImageLayerGzip:                 Gzip,
	ocispec.MediaTypeImageLayerZstd:                 Zstd,
	ocispec.MediaTypeImageLayerNonDistributable:     Uncompressed, //nolint:staticcheck // still found in layouts
	ocispec.MediaTypeImageLayerNonDistributableGzip: Gzip,         //nolint:staticcheck
	ocispec.MediaTypeImageLayerNonDistributableZstd: Zstd,         //nolint:staticcheck
	MediaTypeDockerLayer:                            Uncompressed,
	MediaTypeDockerLayerGzip:                        Gzip,
	MediaTypeDockerForeignLayerGzip:                 Gzip,
}

// LayerCompression returns the compression of a layer media type, or
// an error wrapping ErrUnsupportedMediaType.
func LayerCompression(mediaType string) (Compression, error) {
	c, ok := layerCompression[mediaType]
	if !ok {
		return 0, fmt.Errorf("%w %q for a layer", ErrUnsupportedMediaType, mediaType)
	}
	return c, nil
}

func isManifest(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageManifest || mediaType == MediaTypeDockerManifest
}

func isIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == MediaTypeDockerManifestList
}

func isConfig(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageConfig || mediaType == MediaTypeDockerConfig
}
