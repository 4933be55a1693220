package image

import "errors"

// Sentinel errors, wrapped by the errors this package returns.
var (
	// ErrNotLayout: the directory has no oci-layout file.
	ErrNotLayout = errors.New("image: not an OCI image layout")
	// ErrLayoutVersion: oci-layout names an imageLayoutVersion other
	// than 1.0.0.
	ErrLayoutVersion = errors.New("image: unsupported image layout version")
	// ErrUnsupportedDigest: a digest uses an algorithm other than
	// sha256, sha384 or sha512.
	ErrUnsupportedDigest = errors.New("image: unsupported digest algorithm")
	// ErrBlobNotFound: a blob is not in the layout's blobs directory
	// or among an archive's members.
	ErrBlobNotFound = errors.New("image: blob not in layout")
	// ErrBlobSize: a blob's file size differs from its descriptor's.
	ErrBlobSize = errors.New("image: blob size mismatch")
	// ErrDigestMismatch: a blob's content does not hash to its digest.
	ErrDigestMismatch = errors.New("image: digest mismatch")
	// ErrNotFound: no image has the requested tag or digest.
	ErrNotFound = errors.New("image: not found")
	// ErrAmbiguous: the reference has no tag and the layout holds
	// several images.
	ErrAmbiguous = errors.New("image: several images and no tag given")
	// ErrPlatformNotFound: no manifest matches the requested platform.
	ErrPlatformNotFound = errors.New("image: platform not found")
	// ErrUnsupportedMediaType: a manifest, index, config or layer has a
	// media type this package cannot read.
	ErrUnsupportedMediaType = errors.New("image: unsupported media type")
	// ErrBadArchive: a tar file is not an image archive, or one this
	// package refuses to read (a member outside the archive, duplicate
	// members, a truncated tar, a sparse member).
	ErrBadArchive = errors.New("image: invalid image archive")
	// ErrUnknownTransport: a Reference's Transport is none of the
	// Transport* constants.
	ErrUnknownTransport = errors.New("image: unknown transport")
	// ErrInvalid: a manifest, index or config breaks the spec in a way
	// that stops resolution (wrong schemaVersion, diff_ids count, …).
	ErrInvalid = errors.New("image: invalid")
)
