package cachefile

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
)

// ErrFault reports a memory fault while reading a mapped file: another
// process truncated it after it was mapped.
var ErrFault = errors.New("cachefile: fault reading mapped file")

// Mapping is a cache file mapped read-only into memory (Map).
//
// It is unmapped by Close, or else once the Mapping is unreachable, so
// whatever keeps slices of Bytes must keep the Mapping referenced too
// (and call runtime.KeepAlive on it after its last read).
type Mapping struct {
	b       []byte
	cleanup runtime.Cleanup
	unmap   func([]byte) // nil when nothing was mapped
}

// Bytes returns the file's contents. They must not be modified, and
// should be read inside CatchFault (see the package documentation).
func (m *Mapping) Bytes() []byte { return m.b }

// Close unmaps the file now rather than when m is garbage collected.
// Bytes must not be used afterwards. Close is idempotent.
func (m *Mapping) Close() error {
	if m.unmap == nil {
		return nil
	}
	m.cleanup.Stop()
	m.unmap(m.b)
	m.b, m.unmap = nil, nil
	return nil
}

// CatchFault runs f with faults on unexpected addresses turned into
// panics (runtime/debug.SetPanicOnFault), and returns such a fault as an
// error wrapping ErrFault; other panics propagate. It is how a reader of
// mapped bytes survives another process truncating the file.
func CatchFault(f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if fault, ok := r.(interface{ Addr() uintptr }); ok {
			err = fmt.Errorf("read mapped file at address %#x: %w", fault.Addr(), ErrFault)
			return
		}
		panic(r)
	}()
	return f()
}
