package tarindex

import "errors"

var (
	// ErrMediaType reports a media type that is not a layer type this
	// package reads.
	ErrMediaType = errors.New("tarindex: unsupported layer media type")
	// ErrDigestMismatch reports a blob whose bytes do not match its
	// descriptor's digest or size.
	ErrDigestMismatch = errors.New("tarindex: blob digest mismatch")
	// ErrDiffIDMismatch reports an uncompressed stream whose digest is
	// not the expected diffID.
	ErrDiffIDMismatch = errors.New("tarindex: diffID mismatch")
	// ErrMalformed reports a layer that cannot be decompressed or
	// parsed: bad gzip header, CRC or size trailer, corrupt deflate or
	// zstd data, bad tar header, truncated stream, data that does not
	// match the CRC recorded in the index.
	ErrMalformed = errors.New("tarindex: malformed layer")
	// ErrCorrupt reports an index encoding that fails its checksum or
	// does not parse.
	ErrCorrupt = errors.New("tarindex: corrupt index")
	// ErrLimit reports a layer that exceeds one of the Limits Build
	// enforces (entries, name length, xattr bytes, index memory).
	ErrLimit = errors.New("tarindex: layer exceeds a limit")
	// ErrZstdWindow reports a zstd frame whose header declares a
	// window larger than ZstdMaxWindow, which the decoder would have to
	// allocate before reading any data.
	ErrZstdWindow = errors.New("tarindex: zstd window exceeds the limit")
	// ErrVersion reports an index encoding of a format version this
	// package does not read.
	ErrVersion = errors.New("tarindex: unsupported index version")
)
