package hugemem

import "sync"

// PageSize is the size of a transparent huge page on the platforms
// this package advises (x86-64 and arm64 with 4 KiB base pages).
const PageSize = 2 << 20

// Alloc returns a zeroed buffer of n bytes, aligned to PageSize where
// huge pages are used, and the function that frees it. The buffer must
// not be used after free, which may be called once.
func Alloc(n int) (b []byte, free func()) {
	if n <= 0 {
		return []byte{}, func() {}
	}
	if b, free, ok := alloc(n); ok {
		return b, free
	}
	return make([]byte, n), func() {}
}

// Slab hands out buffers of one size, carved from memory allocated
// PageSize at a time and never returned to the system: for buffers that
// are recycled all the time, such as a Reader's chunk cache, whose
// total is bounded by their users. It is safe for concurrent use; the
// zero value is not usable, use NewSlab.
type Slab struct {
	size int
	mu   sync.Mutex
	free [][]byte
}

// NewSlab returns a Slab of buffers of size bytes.
func NewSlab(size int) *Slab { return &Slab{size: size} }

// Size is the length of the buffers the Slab hands out.
func (s *Slab) Size() int { return s.size }

// Get returns a buffer of Size bytes. Its contents are whatever its
// last user left.
func (s *Slab) Get() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.free) == 0 {
		per := max(1, PageSize/s.size)
		region, _ := Alloc(per * s.size)
		for i := range per {
			s.free = append(s.free, region[i*s.size:(i+1)*s.size:(i+1)*s.size])
		}
	}
	b := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	return b
}

// Put gives back a buffer that Get returned (resliced or not); the
// caller must not use it afterwards. Buffers of another capacity are
// ignored.
func (s *Slab) Put(b []byte) {
	if cap(b) != s.size {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.free = append(s.free, b[:s.size])
}
