package hugemem

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// alloc maps n bytes rounded up to PageSize, aligned to PageSize so
// that every 2 MiB of it can be one huge page, and advises huge pages.
func alloc(n int) ([]byte, func(), bool) {
	size := uintptr(n+PageSize-1) &^ (PageSize - 1)
	if size < uintptr(n) {
		return nil, nil, false // overflow
	}
	raw, err := unix.MmapPtr(-1, 0, nil, size+PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, nil, false
	}
	// mmap only promises base page alignment: trim the unaligned head
	// and whatever is left after size.
	head := -uintptr(raw) & (PageSize - 1)
	if head > 0 {
		unix.MunmapPtr(raw, head)
	}
	p := unsafe.Add(raw, head)
	if tail := PageSize - head; tail > 0 {
		unix.MunmapPtr(unsafe.Add(p, size), tail)
	}
	b := unsafe.Slice((*byte)(p), size)
	unix.Madvise(b, unix.MADV_HUGEPAGE) // advice only: without it, base pages
	return b[:n:n], func() { unix.MunmapPtr(p, size) }, true
}
