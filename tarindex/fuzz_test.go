package tarindex

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"runtime"
	"testing"
	"time"
)

// Seeds live in testdata/fuzz/FuzzDecode and testdata/fuzz/FuzzScan
// (see testdata/README.md); f.Add adds a few built in code as well.

func FuzzDecode(f *testing.F) {
	for _, c := range []Compression{Uncompressed, Gzip, Zstd} {
		raw := randomLayer(rngFor(f), layerSpec{files: 20, maxSize: 64 << 10, sparse: true})
		blob := compress(rngFor(f), raw, c, 2)
		b, err := mustBuild(f, blob, c, BuildOptions{Span: 64 << 10}).MarshalBinary()
		if err != nil {
			f.Fatalf("MarshalBinary: %v", err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		aix, aerr := DecodeAccess(b)
		ix, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever Decode accepts, DecodeAccess accepts, and the two
		// agree on everything but the entries.
		if aerr != nil {
			t.Fatalf("Decode succeeds, DecodeAccess(b) = %v", aerr)
		}
		if aix.Entries != nil || aix.Summary() != ix.Summary() {
			t.Fatalf("DecodeAccess: %d entries decoded, summary %+v, want none and %+v", len(aix.Entries), aix.Summary(), ix.Summary())
		}
		withoutEntries := *ix
		withoutEntries.Entries = nil
		if !reflect.DeepEqual(aix, &withoutEntries) {
			t.Fatalf("DecodeAccess(b) differs from Decode(b) beyond Entries")
		}
		if _, err := aix.MarshalBinary(); err == nil && len(ix.Entries) > 0 {
			t.Fatalf("MarshalBinary of an index without its %d entries succeeded", len(ix.Entries))
		}

		b2, err := ix.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of a decoded index: %v", err)
		}
		ix2, err := Decode(b2)
		if err != nil {
			t.Fatalf("Decode(MarshalBinary(Decode(b))): %v", err)
		}
		ix.encodedSize, ix2.encodedSize = 0, 0
		if !reflect.DeepEqual(ix, ix2) {
			t.Fatalf("index does not round-trip")
		}
	})
}

// maxScanInput bounds FuzzScan's inputs. The mutator can grow an input
// to megabytes, and go test minimizes every input that finds new
// coverage by removing bytes one at a time: on a 1 MiB layer that is a
// minute of minimizing in which nothing else is fuzzed. Small inputs
// cover the same code, because Build walks the same paths for a 4 KiB
// and a 4 MiB tar.
const maxScanInput = 128 << 10

// FuzzScan runs Build over arbitrary bytes as a plain or gzip layer: it
// must not panic, and whatever it indexes must be readable.
func FuzzScan(f *testing.F) {
	raw := randomLayer(rngFor(f), layerSpec{files: 10, maxSize: 2 << 10, sparse: true})
	f.Add(raw, false)
	f.Add(compress(rngFor(f), raw, Gzip, 2), true)
	f.Fuzz(func(t *testing.T, b []byte, gz bool) {
		if len(b) > maxScanInput {
			return
		}
		defer watchdog(10 * time.Second)()
		c := Uncompressed
		if gz {
			c = Gzip
		}
		ix, err := Build(context.Background(), bytes.NewReader(b), descFor(b, c), BuildOptions{})
		if err != nil {
			return
		}
		rd := NewReader(ix, bytes.NewReader(b), ReaderOptions{})
		for i := range ix.Entries {
			e := &ix.Entries[i]
			if e.Size > 1<<20 {
				continue
			}
			buf := make([]byte, e.Size)
			rd.ReadAt(e, buf, 0)
		}
	})
}

// watchdog panics with every goroutine's stack if the returned stop is
// not called within d: go test -fuzz has no per-input timeout, and a
// hung worker is reported without its stack (or, while minimizing,
// without a usable input). A panic is a crash the fuzzer records.
func watchdog(d time.Duration) (stop func()) {
	tm := time.AfterFunc(d, func() {
		buf := make([]byte, 1<<20)
		panic(fmt.Sprintf("input took longer than %v:\n%s", d, buf[:runtime.Stack(buf, true)]))
	})
	return func() { tm.Stop() }
}
