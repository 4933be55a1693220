// Package hugemem allocates byte buffers outside the Go heap, from
// anonymous memory that Linux may back with transparent huge pages
// (madvise MADV_HUGEPAGE; see Documentation/admin-guide/mm/transhuge.rst
// in the kernel tree).
//
// Why: on the VMs ocifs is measured on, the first touch of each fresh
// 4 KiB page costs about 16 µs, because the host backs guest memory
// lazily. Decoding the first file of a fresh mount fills seven 256 KiB
// chunk buffers, 448 fresh pages: about 7 ms of page faults before the
// first byte, more than the decompression itself. Advised huge pages
// arrive 2 MiB at a time, in one fault each (docs/benchmarks.md, "Warm
// mount: where the time goes"). Where huge pages are off or unsupported
// the memory is ordinary anonymous memory; off Linux it is the Go heap.
//
// The Go heap is left alone: advising all of it would round the
// daemon's resident size up to 2 MiB units everywhere, which is why the
// Go runtime itself stopped doing so (Go 1.21.1).
package hugemem
