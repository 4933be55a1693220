package tarindex

// heldBytes sums the chunks in c's LRU, for checking its count.
func (c *ChunkCache) heldBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for el := c.lru.Front(); el != nil; el = el.Next() {
		n += int64(len(el.Value.(*cachedChunk).data))
	}
	return n
}

// lookupFor reports whether chunk k of segment seg of r is cached.
func (c *ChunkCache) lookupFor(r *Reader, seg, k int) *cachedChunk {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.chunks[chunkKey{r.id, seg, k}]; ok {
		return el.Value.(*cachedChunk)
	}
	return nil
}
