package rootfs

// CachedChunkBytes returns the bytes of decompressed chunks all the
// layers' readers hold, and their bound.
func (r *RootFS) CachedChunkBytes() (held, limit int64) {
	return r.chunks.Bytes(), cacheBytes
}
