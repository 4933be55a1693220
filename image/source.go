package image

import (
	"context"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Transport names where a reference's image is kept, with skopeo's
// transport names (containers-transports(5)).
type Transport string

const (
	// TransportLayout is an OCI image layout directory (image-layout.md):
	// "PATH[:TAG]", "PATH@DIGEST" or "oci:PATH[:TAG]". It is the zero
	// value.
	TransportLayout Transport = ""
	// TransportOCIArchive is an OCI image layout in a tar file:
	// "oci-archive:PATH[:TAG]".
	TransportOCIArchive Transport = "oci-archive"
	// TransportDockerArchive is what docker save and podman save write:
	// "docker-archive:PATH[:N|:REPO:TAG]".
	TransportDockerArchive Transport = "docker-archive"
	// TransportRegistry is a registry speaking the OCI distribution
	// spec: "docker://HOST[:PORT]/REPO[:TAG|@DIGEST]".
	TransportRegistry Transport = "docker"
)

// Source is where an image's manifests, configs and layers come from:
// a layout directory, an archive or a registry. Everything above
// package image sees only this: the blobs of any source are
// io.ReaderAt. Implementations are safe for concurrent use.
type Source interface {
	// Resolve returns the descriptors of the manifests or image
	// indexes ref's tag or digest names, or with neither the source's
	// only image. Several descriptors are platforms to choose from
	// (a layout may tag each platform's manifest with one name).
	Resolve(ctx context.Context, ref Reference) ([]ocispec.Descriptor, error)
	// ReadBlob reads the small blob desc names (a manifest, an index,
	// a config) whole, refusing more than maxJSONBlob bytes, and
	// verifies its size and digest before returning it.
	ReadBlob(ctx context.Context, desc ocispec.Descriptor) ([]byte, error)
	// OpenBlob opens the blob desc names for random access. Its
	// contents are not hashed here: layers are large and read lazily.
	OpenBlob(ctx context.Context, desc ocispec.Descriptor) (Blob, error)
	// Close releases what the source holds open.
	Close() error
}

// Blob is one blob opened for random access, safe for concurrent use.
// Size is the descriptor's size; a read past it returns io.EOF.
type Blob interface {
	io.ReaderAt
	Size() int64
	Close() error
}
