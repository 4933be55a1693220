package tarindex

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ocifs/ocifs/internal/cachefile"
)

// reseal replaces b's CRC-32C trailer with the right one, so that a
// test reaches the checks behind it.
func reseal(b []byte) []byte {
	b = append([]byte(nil), b[:len(b)-4]...)
	if end, ok := accessEnd(b); ok {
		binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[:end], castagnoli))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// skipHeader reads the fields before the entry count: version,
// compression, media type, digest, diffID and four sizes.
func skipHeader(d *decoder) {
	d.uvarint()
	d.byte1()
	d.str()
	d.str()
	d.str()
	for range 4 {
		d.size()
	}
}

// accessEnd walks an encoding (without its trailer) to the access
// section's checksum and returns its offset, if it gets there.
func accessEnd(b []byte) (int, bool) {
	if len(b) < len(indexMagic) {
		return 0, false
	}
	d := decoder{b: b[len(indexMagic):]}
	skipHeader(&d)
	d.uvarint()
	d.uvarint()
	for range d.count(3) {
		d.size()
		d.size()
		if d.byte1() == pointInflate {
			d.byte1()
			d.uvarint()
			d.bytes(4)
		}
	}
	d.bytes(4 * d.count(4))
	end := len(b) - len(d.b)
	return end, d.err == nil && len(d.b) >= 4
}

// headerCounts returns where b's entry count starts, and the count and
// name-bytes fields themselves.
func headerCounts(t *testing.T, b []byte) (at int, count, strBytes uint64) {
	t.Helper()
	d := decoder{b: b[len(indexMagic) : len(b)-4]}
	skipHeader(&d)
	at = len(b) - 4 - len(d.b)
	count, strBytes = d.uvarint(), d.uvarint()
	if d.err != nil {
		t.Fatalf("walk index header: %v", d.err)
	}
	return at, count, strBytes
}

// withCounts re-encodes b's entry count and name bytes and reseals it.
func withCounts(t *testing.T, b []byte, count, strBytes uint64) []byte {
	t.Helper()
	at, oldCount, oldStr := headerCounts(t, b)
	old := len(binary.AppendUvarint(binary.AppendUvarint(nil, oldCount), oldStr))
	out := append([]byte(nil), b[:at]...)
	out = binary.AppendUvarint(out, count)
	out = binary.AppendUvarint(out, strBytes)
	return reseal(append(out, b[at+old:]...))
}

// TestDecodeAccessErrors runs Decode and DecodeAccess on damaged
// encodings. DecodeAccess checks the access section and the windows'
// bounds, not the windows' bytes (a Reader checks each on use) nor the
// entries, so damage there is Decode's alone to find; damage anywhere
// else fails both.
func TestDecodeAccessErrors(t *testing.T) {
	_, _, ix, b := gzipEncoding(t)
	_, n, strBytes := headerCounts(t, b)
	if n != uint64(len(ix.Entries)) {
		t.Fatalf("header says %d entries, index has %d", n, len(ix.Entries))
	}
	windowsAt, entriesAt := sections(t, ix, b)
	future := append([]byte(nil), b...)
	future[len(indexMagic)] = FormatVersion + 1
	flip := func(at int) []byte { c := append([]byte(nil), b...); c[at] ^= 4; return c }

	vectors := []struct {
		name         string
		b            []byte
		decode       error // nil: Decode must succeed
		decodeAccess error // nil: DecodeAccess must succeed
	}{
		{"intact", b, nil, nil},
		{"empty", nil, ErrCorrupt, ErrCorrupt},
		{"bad magic", append([]byte("XX"), b[2:]...), ErrCorrupt, ErrCorrupt},
		{"previous version", func() []byte { c := append([]byte(nil), b...); c[len(indexMagic)] = 2; return c }(), ErrVersion, ErrVersion},
		{"future version", future, ErrVersion, ErrVersion},
		{"truncated", b[:len(b)-1], ErrCorrupt, nil},
		{"truncated in the windows", b[:windowsAt+len(ix.windows)/2], ErrCorrupt, ErrCorrupt},
		{"truncated in the access points, resealed", reseal(append([]byte(nil), b[:windowsAt/2+4]...)), ErrCorrupt, ErrCorrupt},
		{"no entries section, resealed", reseal(append([]byte(nil), b[:entriesAt+4]...)), ErrCorrupt, ErrCorrupt},
		{"flipped bit in the header", flip(40), ErrCorrupt, ErrCorrupt},
		{"flipped bit in the access points", flip(windowsAt / 2), ErrCorrupt, ErrCorrupt},
		{"flipped bit in the windows", flip(windowsAt + 3), ErrCorrupt, nil},
		{"flipped bit in the entries", flip(entriesAt + 3), ErrCorrupt, nil},
		{"entry count beyond the entries section", withCounts(t, b, uint64(len(b)), strBytes), ErrCorrupt, ErrCorrupt},
		{"huge entry count", withCounts(t, b, math.MaxUint64, strBytes), ErrCorrupt, ErrCorrupt},
		{"one entry more than encoded, resealed", withCounts(t, b, n+1, strBytes), ErrCorrupt, nil},
		{"wrong name bytes, resealed", withCounts(t, b, n, strBytes+1), ErrCorrupt, nil},
		{"garbage entries, resealed", reseal(append(append([]byte(nil), b[:entriesAt]...), bytes.Repeat([]byte{0xff}, len(b)-entriesAt)...)), ErrCorrupt, nil},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			full, err := Decode(tc.b)
			if !errors.Is(err, tc.decode) || (tc.decode == nil) != (err == nil) {
				t.Errorf("Decode = %v, want %v", err, tc.decode)
			}
			aix, err := DecodeAccess(tc.b)
			if tc.decodeAccess != nil {
				if !errors.Is(err, tc.decodeAccess) || aix != nil {
					t.Errorf("DecodeAccess = %v, %v, want error %v", aix != nil, err, tc.decodeAccess)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeAccess = %v, want success", err)
			}
			if aix.Entries != nil {
				t.Errorf("DecodeAccess decoded %d entries, want none", len(aix.Entries))
			}
			_, wantN, _ := headerCounts(t, tc.b)
			if got := aix.Summary().Entries; uint64(got) != wantN {
				t.Errorf("DecodeAccess: Summary().Entries = %d, want %d", got, wantN)
			}
			if full != nil {
				if got, want := aix.Summary(), full.Summary(); got != want {
					t.Errorf("DecodeAccess: Summary() = %+v, Decode's is %+v", got, want)
				}
			}
		})
	}
}

// TestReaderDamagedWindow: a window DecodeAccess did not check is
// checked when a Reader first inflates it; reads that need it fail with
// ErrCorrupt, and every read that succeeds has the right bytes.
func TestReaderDamagedWindow(t *testing.T) {
	raw, blob, ix, b := gzipEncoding(t)
	want := readTar(t, raw)
	windowsAt, _ := sections(t, ix, b)
	var inflate []point
	for _, p := range ix.points {
		if p.Kind == pointInflate {
			inflate = append(inflate, p)
		}
	}
	if len(inflate) < 2 {
		t.Fatalf("%d inflate points, want several", len(inflate))
	}
	// The middle of the first, a middle and the last window: the ends
	// of a deflate stream may be padding or framing.
	for _, p := range []point{inflate[0], inflate[len(inflate)/2], inflate[len(inflate)-1]} {
		at := p.winOff + p.winLen/2
		d := append([]byte(nil), b...)
		d[windowsAt+at] ^= 0x10
		aix, err := DecodeAccess(d)
		if err != nil {
			t.Fatalf("DecodeAccess (window byte %d flipped) = %v, want success", at, err)
		}
		failed := 0
		for i := range ix.Entries {
			e := &ix.Entries[i]
			if e.Type != tar.TypeReg {
				continue
			}
			// A fresh Reader starts at the nearest access point, with
			// its window, instead of decoding on from the last read.
			for off := int64(0); off < e.Size; off += 16 << 10 {
				rd := NewReader(aix, bytes.NewReader(blob), ReaderOptions{})
				buf := make([]byte, min(4<<10, e.Size-off))
				n, err := rd.ReadAt(e, buf, off)
				rd.Close()
				switch {
				case errors.Is(err, ErrCorrupt):
					failed++
				case err != nil && err != io.EOF:
					t.Errorf("ReadAt(%q, %d) = %v, want success or ErrCorrupt", e.Name, off, err)
				case !bytes.Equal(buf[:n], want[i].data[off:off+int64(n)]):
					t.Fatalf("ReadAt(%q, %d) with window byte %d flipped: wrong bytes", e.Name, off, at)
				}
			}
		}
		if failed == 0 {
			t.Errorf("window byte %d flipped: every read succeeded", at)
		}
	}
}

// gzipEncoding builds the index of a small gzip layer with access points
// every 64 KiB, and encodes it.
func gzipEncoding(t *testing.T) (raw, blob []byte, ix *Index, b []byte) {
	t.Helper()
	raw = smallLayer(t)
	blob = compress(rngFor(t), raw, Gzip, 1)
	ix = mustBuild(t, blob, Gzip, BuildOptions{Span: 64 << 10})
	b, err := ix.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	return raw, blob, ix, b
}

// sections returns where the windows and the entries of ix's encoding b
// start: the entries where the windows end, the windows after the access
// section's checksum and their length.
func sections(t *testing.T, ix *Index, b []byte) (windowsAt, entriesAt int) {
	t.Helper()
	if len(ix.windows) == 0 {
		t.Fatalf("no windows: the test needs a gzip index with inflate points")
	}
	entriesAt = len(b) - 4 - len(appendEntriesOrDie(t, ix.Entries))
	return entriesAt - len(ix.windows), entriesAt
}

func appendEntriesOrDie(t *testing.T, entries []Entry) []byte {
	t.Helper()
	b, err := appendEntries(nil, entries)
	if err != nil {
		t.Fatalf("appendEntries: %v", err)
	}
	return b
}

// TestMarshalWithoutEntries: an Index from DecodeAccess cannot be
// written back, or a cache would store an index that lost its entries.
func TestMarshalWithoutEntries(t *testing.T) {
	raw := smallLayer(t)
	b, err := mustBuild(t, raw, Uncompressed, BuildOptions{}).MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	aix, err := DecodeAccess(b)
	if err != nil {
		t.Fatalf("DecodeAccess: %v", err)
	}
	if out, err := aix.MarshalBinary(); err == nil {
		t.Fatalf("MarshalBinary(DecodeAccess(b)) = %d bytes, want an error", len(out))
	}
}

// TestCacheAccess checks Cache.Access on a hit, a miss and damaged
// files, for a gzip layer with windows (which stay mapped) and a plain
// one (whose mapping goes at once).
func TestCacheAccess(t *testing.T) {
	raw := smallLayer(t)
	ctx := context.Background()
	opts := BuildOptions{Span: 64 << 10}
	for _, comp := range []Compression{Gzip, Uncompressed} {
		t.Run(comp.String(), func(t *testing.T) {
			blob := compress(rngFor(t), raw, comp, 1)
			desc := descFor(blob, comp)
			full := mustBuild(t, blob, comp, opts)
			c := &Cache{Dir: t.TempDir()}
			p, err := c.Path(desc)
			if err != nil {
				t.Fatalf("Path: %v", err)
			}

			// Miss: built, stored, returned whole.
			ix, err := c.Access(ctx, bytes.NewReader(blob), desc, opts)
			if err != nil {
				t.Fatalf("Access (miss): %v", err)
			}
			if len(ix.Entries) != len(full.Entries) {
				t.Errorf("Access (miss) returned %d entries, want the built %d", len(ix.Entries), len(full.Entries))
			}
			good, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("cache file not written: %v", err)
			}
			if ix.Summary().EncodedSize != len(good) {
				t.Errorf("EncodedSize = %d, want %d", ix.Summary().EncodedSize, len(good))
			}

			vectors := []struct {
				name    string
				damage  func()
				hit     bool  // the file is trusted: no entries decoded
				wantErr error // from Access; the cases after it are skipped
				opts    BuildOptions
				blob    []byte
			}{
				{"hit", func() {}, true, nil, opts, blob},
				{"truncated file", func() { os.WriteFile(p, good[:len(good)/2], 0o644) }, false, nil, opts, blob},
				{"flipped byte in the access section", func() {
					b := append([]byte(nil), good...)
					end, _ := accessEnd(b[:len(b)-4])
					b[end-3] ^= 1 // a chunk checksum
					os.WriteFile(p, b, 0o644)
				}, false, nil, opts, blob},
				{"empty file", func() { os.WriteFile(p, nil, 0o644) }, false, nil, opts, blob},
				{"hit after rebuild", func() {}, true, nil, opts, blob},
				{"other diffID", func() {}, false, ErrDiffIDMismatch, BuildOptions{Span: opts.Span, DiffID: digest.FromString("other")}, blob},
				{"blob changed size", func() {}, false, ErrDigestMismatch, opts, append(append([]byte(nil), blob...), 0)},
			}
			for _, tc := range vectors {
				t.Run(tc.name, func(t *testing.T) {
					tc.damage()
					ix, err := c.Access(ctx, bytes.NewReader(tc.blob), desc, tc.opts)
					if tc.wantErr != nil {
						if !errors.Is(err, tc.wantErr) {
							t.Fatalf("Access = %v, want %v", err, tc.wantErr)
						}
						return
					}
					if err != nil {
						t.Fatalf("Access: %v", err)
					}
					if tc.hit != (ix.Entries == nil) {
						t.Errorf("Access decoded %d entries; want a hit %v", len(ix.Entries), tc.hit)
					}
					if tc.hit && comp == Gzip && ix.file == nil {
						t.Errorf("Access of a gzip index with windows left no mapping")
					}
					if tc.hit && comp == Uncompressed && ix.file != nil {
						t.Errorf("Access of a plain index kept its file mapped")
					}
					if got := ix.Summary().Entries; got != len(full.Entries) {
						t.Errorf("Summary().Entries = %d, want %d", got, len(full.Entries))
					}
					checkEntries(t, ix, full.Entries, blob, raw)
					if b, _ := os.ReadFile(p); !bytes.Equal(b, good) {
						t.Errorf("cache file not rebuilt to the good encoding")
					}
				})
			}

			// Damaged entries: Access does not read them, Index
			// does, and rebuilds the file.
			b := append([]byte(nil), good...)
			b[len(b)-8] ^= 1
			os.WriteFile(p, b, 0o644)
			if ix, err := c.Access(ctx, bytes.NewReader(blob), desc, opts); err != nil || ix.Entries != nil {
				t.Errorf("Access with damaged entries = %v (entries decoded: %v), want a hit", err, ix != nil && ix.Entries != nil)
			}
			if ix, err := c.Index(ctx, bytes.NewReader(blob), desc, opts); err != nil || !equalIndex(ix, full) {
				t.Errorf("Index with damaged entries = %v, want the index rebuilt", err)
			}
			if b, _ := os.ReadFile(p); !bytes.Equal(b, good) {
				t.Errorf("cache file with damaged entries not rebuilt by Index")
			}

			t.Run("Index after Access", func(t *testing.T) {
				ix, err := c.Index(ctx, bytes.NewReader(blob), desc, opts)
				if err != nil {
					t.Fatalf("Index: %v", err)
				}
				if ix.Entries == nil || !equalIndex(ix, full) {
					t.Errorf("Index after Access differs from Build")
				}
			})
		})
	}
}

// equalIndex compares what Decode restores (not the mapping, nor the
// encoded size).
func equalIndex(a, b *Index) bool {
	x, y := *a, *b
	x.file, y.file, x.encodedSize, y.encodedSize = nil, nil, 0, 0
	xb, err1 := x.MarshalBinary()
	yb, err2 := y.MarshalBinary()
	return err1 == nil && err2 == nil && bytes.Equal(xb, yb)
}

// TestCacheFileChangesWhileMapped: once Access has mapped a gzip index,
// replacing the file (as WriteAtomic does) changes nothing, and
// truncating it in place (as no ocifs code does) makes the reads that
// need a window fail with an error instead of killing the process.
func TestCacheFileChangesWhileMapped(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("cache files are read, not mapped, here")
	}
	raw := smallLayer(t)
	blob := compress(rngFor(t), raw, Gzip, 1)
	desc := descFor(blob, Gzip)
	opts := BuildOptions{Span: 64 << 10}
	full := mustBuild(t, blob, Gzip, opts)
	ctx := context.Background()
	c := &Cache{Dir: t.TempDir()}
	p, _ := c.Path(desc)
	if _, err := c.Access(ctx, bytes.NewReader(blob), desc, opts); err != nil {
		t.Fatalf("Access (miss): %v", err)
	}
	load := func() *Index {
		ix, err := c.Access(ctx, bytes.NewReader(blob), desc, opts)
		if err != nil || ix.file == nil {
			t.Fatalf("Access (hit) = %v; mapped %v", err, err == nil && ix.file != nil)
		}
		return ix
	}

	t.Run("replaced", func(t *testing.T) {
		ix := load()
		if err := cachefile.WriteAtomic(p, []byte("not an index")); err != nil {
			t.Fatalf("WriteAtomic: %v", err)
		}
		checkEntries(t, ix, full.Entries, blob, raw)
		if err := os.Remove(p); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		checkEntries(t, ix, full.Entries, blob, raw)
	})

	t.Run("truncated in place", func(t *testing.T) {
		if _, err := c.Access(ctx, bytes.NewReader(blob), desc, opts); err != nil {
			t.Fatalf("Access (rebuild): %v", err)
		}
		ix := load()
		// The last file lies in a segment that starts at an inflate
		// point, so reading it needs a window from the mapping.
		e := &full.Entries[len(full.Entries)-1]
		seg := sort.Search(len(ix.points), func(i int) bool { return ix.points[i].U > e.Offset }) - 1
		if seg < 0 || ix.points[seg].Kind != pointInflate {
			t.Fatalf("last entry is not in a segment with a window (segment %d)", seg)
		}
		if err := os.Truncate(p, 0); err != nil {
			t.Fatalf("Truncate: %v", err)
		}
		rd := NewReader(ix, bytes.NewReader(blob), ReaderOptions{})
		defer rd.Close()
		buf := make([]byte, e.Size)
		n, err := rd.ReadAt(e, buf, 0)
		if !errors.Is(err, ErrCorrupt) || !errors.Is(err, cachefile.ErrFault) {
			t.Errorf("ReadAt(%q) after truncating the mapped index = %d, %v; want ErrCorrupt and cachefile.ErrFault", e.Name, n, err)
		}
	})
}

// TestReadAtOutOfRange gives ReadAt entries that are not the index's
// and whose data lies (partly) outside the tar stream: each must fail
// with ErrMalformed before anything is read, never panic or return
// bytes. The in-range control reads the stream's last bytes.
func TestReadAtOutOfRange(t *testing.T) {
	raw := smallLayer(t)
	const big = math.MaxInt64
	for _, comp := range []Compression{Uncompressed, Gzip, Zstd} {
		t.Run(comp.String(), func(t *testing.T) {
			blob := compress(rngFor(t), raw, comp, 2)
			ix := mustBuild(t, blob, comp, BuildOptions{Span: 64 << 10})
			ts := ix.TarSize
			base := ix.Entries[0]
			vectors := []struct {
				name string
				mod  func(e *Entry)
				ok   bool
			}{
				{"in range: the stream's last bytes", func(e *Entry) { e.Offset, e.Size = ts-100, 100 }, true},
				{"in range: sparse, data at the stream's end", func(e *Entry) {
					e.Offset, e.Size, e.Sparse = ts-30, 1000, []SparseRegion{{10, 10}, {500, 20}}
				}, true},
				{"negative offset", func(e *Entry) { e.Offset = -1 }, false},
				{"negative size", func(e *Entry) { e.Size = -1 }, false},
				{"one byte past the end", func(e *Entry) { e.Offset, e.Size = ts-99, 100 }, false},
				{"offset at the end", func(e *Entry) { e.Offset = ts }, false},
				{"offset past the end", func(e *Entry) { e.Offset, e.Size = ts+1<<20, 0 }, false},
				{"offset plus size overflows", func(e *Entry) { e.Offset, e.Size = ts-10, big }, false},
				{"huge offset", func(e *Entry) { e.Offset = big }, false},
				{"sparse region past size", func(e *Entry) { e.Offset, e.Size, e.Sparse = 0, 100, []SparseRegion{{50, 51}} }, false},
				{"sparse regions out of order", func(e *Entry) { e.Offset, e.Size, e.Sparse = 0, 100, []SparseRegion{{50, 10}, {10, 10}} }, false},
				{"sparse regions overlap", func(e *Entry) { e.Offset, e.Size, e.Sparse = 0, 100, []SparseRegion{{10, 10}, {15, 10}} }, false},
				{"sparse negative length", func(e *Entry) { e.Offset, e.Size, e.Sparse = 0, 100, []SparseRegion{{10, -5}} }, false},
				{"sparse negative offset", func(e *Entry) { e.Offset, e.Size, e.Sparse = 0, 100, []SparseRegion{{-10, 20}} }, false},
				{"sparse offset plus length overflows", func(e *Entry) { e.Offset, e.Size, e.Sparse = 0, big, []SparseRegion{{big - 1, 10}} }, false},
				{"sparse data past the end", func(e *Entry) { e.Offset, e.Size, e.Sparse = ts-5, 100, []SparseRegion{{0, 10}} }, false},
				{"sparse lengths add up past the stream", func(e *Entry) {
					e.Offset, e.Size, e.Sparse = 0, big, []SparseRegion{{0, big/2 + 1}, {big/2 + 1, big / 2}}
				}, false},
			}
			rd := NewReader(ix, bytes.NewReader(blob), ReaderOptions{})
			defer rd.Close()
			for _, tc := range vectors {
				t.Run(tc.name, func(t *testing.T) {
					e := base
					e.Name = "foreign"
					tc.mod(&e)
					for _, off := range []int64{0, 7} {
						buf := make([]byte, 64)
						n, err := rd.ReadAt(&e, buf, off)
						if tc.ok {
							if err != nil && err != io.EOF {
								t.Fatalf("ReadAt(%q, off %d) = %d, %v, want data", e.Name, off, n, err)
							}
							if e.Sparse == nil && !bytes.Equal(buf[:n], raw[e.Offset+off:e.Offset+off+int64(n)]) {
								t.Errorf("ReadAt(%q, off %d) returned the wrong bytes", e.Name, off)
							}
							continue
						}
						if !errors.Is(err, ErrMalformed) || n != 0 {
							t.Errorf("ReadAt(%+v, off %d) = %d, %v, want 0, ErrMalformed", e, off, n, err)
						}
					}
				})
			}
		})
	}
}

// BenchmarkCheckData measures the range check ReadAt makes of every
// entry it is given.
func BenchmarkCheckData(b *testing.B) {
	ix := &Index{TarSize: 1 << 30}
	vectors := []struct {
		name string
		e    Entry
	}{
		{"regular", Entry{Offset: 1 << 20, Size: 1 << 16}},
		{"sparse-8-regions", Entry{Offset: 1 << 20, Size: 1 << 24, Sparse: func() []SparseRegion {
			var s []SparseRegion
			for i := range 8 {
				s = append(s, SparseRegion{Offset: int64(i) << 20, Length: 4096})
			}
			return s
		}()}},
	}
	for _, tc := range vectors {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				if err := ix.checkData(&tc.e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
