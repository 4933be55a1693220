package gen

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
)

// filler makes the bytes of one layer's files from the layer's own
// random stream, so layers can be written in any order and in parallel.
type filler struct {
	rng      *rand.ChaCha8
	voc      *vocabulary // read only: words and table
	buf      []byte
	and      []byte
	patterns [][]byte
}

const fillChunk = 64 << 10

func newFiller(seed uint64, layer int, voc *vocabulary) *filler {
	s := sha256.Sum256(fmt.Appendf(nil, "ocifs-bench/%d/layer/%d", seed, layer))
	f := &filler{
		rng: rand.NewChaCha8(s),
		voc: voc,
		buf: make([]byte, fillChunk),
		and: make([]byte, 4096),
	}
	// Repeated instruction-like sequences and tables of a binary.
	for range 32 {
		p := make([]byte, 16+f.rng.Uint64()%49)
		_, _ = f.rng.Read(p)
		f.patterns = append(f.patterns, p)
	}
	return f
}

// write writes e's contents to w.
func (f *filler) write(w io.Writer, e *entry) error {
	switch e.fill {
	case fillFixed:
		_, err := w.Write(e.data)
		return err
	case fillText:
		return f.stream(w, e.size, f.text)
	case fillCode:
		return f.stream(w, e.size, f.code)
	default:
		return f.stream(w, e.size, f.random)
	}
}

// stream writes n bytes made chunk by chunk by next.
func (f *filler) stream(w io.Writer, n int64, next func([]byte) []byte) error {
	for n > 0 {
		b := next(f.buf[:0])
		k := min(int64(len(b)), n)
		if _, err := w.Write(b[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// text appends lines of words (indented like source code, with some
// punctuation) until b is nearly full.
func (f *filler) text(b []byte) []byte {
	indents := [8]int{0, 0, 2, 4, 4, 8, 8, 12}
	puncts := [8]string{"", "", ".", ",", ";", " {", " }", ":"}
	for len(b) < cap(b)-256 {
		r := f.rng.Uint64()
		for range indents[r&7] {
			b = append(b, ' ')
		}
		p := puncts[(r>>3)&7]
		nw := 2 + int((r>>6)%11)
		var bits uint64
		for i := range nw {
			if i%4 == 0 {
				bits = f.rng.Uint64()
			}
			if i > 0 {
				b = append(b, ' ')
			}
			b = append(b, f.voc.words[f.voc.table[uint16(bits)]]...)
			bits >>= 16
		}
		b = append(b, p...)
		b = append(b, '\n')
	}
	return b
}

// code appends 4 KiB blocks that look like machine code to a
// compressor: half repeat short patterns (with some noise), the rest
// are skewed random bytes (each bit set with probability 1/4).
func (f *filler) code(b []byte) []byte {
	for len(b)+4096 <= cap(b) {
		blk := b[len(b) : len(b)+4096]
		r := f.rng.Uint64()
		if r%2 == 0 {
			pat := f.patterns[(r>>8)%uint64(len(f.patterns))]
			for i := 0; i < len(blk); i += len(pat) {
				copy(blk[i:], pat)
			}
			for range 8 {
				v := f.rng.Uint64()
				binary.LittleEndian.PutUint64(blk[v%(4096-8):], f.rng.Uint64())
			}
		} else {
			_, _ = f.rng.Read(blk)
			_, _ = f.rng.Read(f.and)
			for i := range blk {
				blk[i] &= f.and[i]
			}
		}
		b = b[:len(b)+4096]
	}
	return b
}

// random fills b with random bytes, like already compressed data.
func (f *filler) random(b []byte) []byte {
	b = b[:cap(b)]
	_, _ = f.rng.Read(b)
	return b
}
