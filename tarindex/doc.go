// Package tarindex indexes OCI layer blobs so that any file's bytes can
// be read without unpacking the layer.
//
// # What it owns
//
// Build reads a layer blob once, sequentially, verifying the blob digest
// and the diffID, and records every tar entry (name, type, mode, owner,
// times, link target, device numbers, xattrs, sparse map, data offset)
// plus access points into the compressed stream: gzip inflate
// checkpoints with their 32 KiB window, gzip member starts, zstd frame
// starts. Plain tar needs no access points. The Index has a compact
// versioned binary encoding (MarshalBinary, Decode; see
// docs/index-format.md) and a Cache keeps encoded indexes on disk, keyed
// by blob digest and format version. DecodeAccess and Cache.Access load
// an index without its entries, for callers that have them elsewhere (a
// mount reads its tree from a cached merged tree): that is the
// difference between milliseconds and tens of milliseconds for a large
// layer.
//
// A Reader serves the bytes of any entry of the layer (the Index's own,
// or one from a merged tree), after checking that its data lies inside
// the tar stream. It finds the access point with a binary search,
// decompresses from it only as far as needed, checks each decompressed
// chunk (each 64 KiB of a plain tar blob) against the CRC-32C recorded
// at build time, and keeps a bounded LRU of decompressed chunks plus a
// few live decoders so sequential reads continue instead of restarting.
//
// # What it never does
//
// It never extracts files to disk, never merges layers (whiteouts are
// ordinary entries here; only the overlay package knows what they mean)
// and never touches FUSE. It does not resolve images or descriptors: the
// caller passes the layer's descriptor and, when known, its diffID.
//
// # Errors
//
// Malformed layers fail with errors that wrap ErrMalformed (or
// ErrDigestMismatch, ErrDiffIDMismatch, ErrMediaType), layers over the
// BuildOptions.Limits with ErrLimit; a damaged index
// encoding fails with ErrCorrupt or ErrVersion. A Cache never trusts a
// file that fails these checks: it rebuilds it.
package tarindex
