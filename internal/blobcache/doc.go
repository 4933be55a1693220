// Package blobcache keeps the byte ranges ocifs fetched of remote blobs
// on disk, so that no byte of a layer is fetched twice, by one mount or
// by any other mount of any image that has the layer.
//
// # What it owns
//
// Cache.Wrap turns a blob that is expensive to read (a registry's,
// through HTTP range requests) into one that reads through the cache:
// a read is split into aligned chunks (ChunkSize), the chunks on disk
// are served from there, and the missing ones are fetched from the
// blob, neighbours together in one read, and stored. A read that
// follows the previous one fetches ahead in growing windows (up to
// MaxReadahead), so the one pass that indexes a layer costs a few large
// requests instead of one per chunk.
//
// Chunk files are content-addressed by the blob's digest and the
// chunk's offset:
//
//	DIR/blobs/v1/<alg>/<hex>/<offset as 16 hex digits>
//
// Each holds a 32-byte header (magic, offset, length, CRC-32C of the
// data) and the chunk's bytes, and is written atomically
// (cachefile.WriteAtomic). Every chunk read from disk is checked against
// its header before use; a chunk that fails (damaged, truncated,
// another blob's) is removed, logged, and fetched again, so damage
// costs a fetch, never a wrong byte and never a manual cleanup.
//
// The cache is bounded: once it holds more than Cache.MaxBytes, the
// least recently used chunk files (by modification time, which a read
// refreshes) are removed until it holds at most nine tenths of it.
// Du and Prune report and empty it for `ocifs cache`.
//
// # What it never does
//
// It never decides whether bytes are the blob's: the chunk CRC only
// proves that the disk returned what was stored. The digest of a layer
// fetched whole is checked by tarindex.Build, and every decompressed
// chunk by the index's checksums, as for any other source.
package blobcache
