package tarindex

import (
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Compression is the compression of a layer blob, as named by its media
// type.
type Compression uint8

const (
	Uncompressed Compression = iota // plain tar
	Gzip                            // RFC 1952, possibly many members
	Zstd                            // RFC 8878, possibly many frames
)

// String returns "tar", "gzip" or "zstd".
func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "tar"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", uint8(c))
}

// Docker's media types for gzip and uncompressed layers; image-spec
// media-types.md lists the gzip one as interchangeable with the OCI
// gzip type, and docker-archives hold uncompressed layer.tar members.
const (
	mediaTypeDockerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mediaTypeDocker     = "application/vnd.docker.image.rootfs.diff.tar"
)

// CompressionOf maps a layer media type to its compression. The media
// type is authoritative: the blob is never sniffed to choose. An unknown
// media type is an error wrapping ErrMediaType.
func CompressionOf(mediaType string) (Compression, error) {
	switch mediaType {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerNonDistributable, mediaTypeDocker: //nolint:staticcheck // deprecated but must be read
		return Uncompressed, nil
	case ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerNonDistributableGzip, mediaTypeDockerGzip: //nolint:staticcheck
		return Gzip, nil
	case ocispec.MediaTypeImageLayerZstd, ocispec.MediaTypeImageLayerNonDistributableZstd: //nolint:staticcheck
		return Zstd, nil
	}
	return 0, fmt.Errorf("layer media type %q: %w", mediaType, ErrMediaType)
}

// sticky keeps the first error of a decompressing stream. A caller such
// as io.ReadFull may drop an error that comes with enough bytes; the
// next Read must report it again rather than go on past the damage
// (start a new gzip member or zstd frame, for instance).
type sticky struct{ err error }

// read returns what next reads into p, or the error kept from before.
func (s *sticky) read(p []byte, next func([]byte) (int, error)) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := next(p)
	s.err = err
	return n, err
}
