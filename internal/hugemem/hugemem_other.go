//go:build !linux

package hugemem

// alloc leaves allocation to the Go heap where huge pages are not
// advised.
func alloc(n int) ([]byte, func(), bool) { return nil, nil, false }
