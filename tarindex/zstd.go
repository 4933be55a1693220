package tarindex

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// zstd frame magics, RFC 8878 sections 3.1.1 and 3.1.2.
const (
	zstdMagic         = 0xFD2FB528
	zstdSkippableMask = 0xFFFFFFF0
	zstdSkippableBase = 0x184D2A50
	zstdMaxBlockSize  = 128 << 10
)

// zstdStream decodes a zstd stream frame by frame. A frameReader walks
// each frame's header and block headers so that the decoder sees exactly
// one frame and we learn where every frame starts: those starts are the
// access points of a zstd layer.
type zstdStream struct {
	br  *bufio.Reader
	pos func() int64

	dec     *zstd.Decoder
	fr      frameReader
	inFrame bool
	sticky  sticky // the first error, kept
	frames  int
	u       int64

	onFrame func(c, u int64) // Build hook: a frame starts at compressed offset c
}

func newZstdStream(br *bufio.Reader) (*zstdStream, error) {
	// One goroutine and low memory: the Reader keeps several of these
	// alive, and the blob is read through frameReader anyway.
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, fmt.Errorf("create zstd decoder: %w", err)
	}
	return &zstdStream{br: br, dec: dec}, nil
}

func (z *zstdStream) Close() { z.dec.Close() }

// Read returns decompressed bytes. Errors are sticky (see sticky).
func (z *zstdStream) Read(p []byte) (int, error) { return z.sticky.read(p, z.read) }

func (z *zstdStream) read(p []byte) (int, error) {
	for {
		if !z.inFrame {
			if err := z.startFrame(); err != nil {
				return 0, err
			}
		}
		n, err := z.dec.Read(p)
		z.u += int64(n)
		switch {
		case err == io.EOF:
			if !z.fr.done() {
				return n, fmt.Errorf("decode zstd frame %d: decoder stopped before the frame's end: %w", z.frames, ErrMalformed)
			}
			z.inFrame = false
		case err != nil:
			if errors.Is(err, ErrMalformed) {
				return n, err
			}
			return n, fmt.Errorf("decode zstd frame %d: %v: %w", z.frames, err, ErrMalformed)
		}
		if n > 0 {
			return n, nil
		}
	}
}

// startFrame skips skippable frames and starts the decoder on the next
// data frame. At the end of the stream, after at least one frame, it
// returns io.EOF.
func (z *zstdStream) startFrame() error {
	for {
		start := int64(-1)
		if z.pos != nil {
			start = z.pos()
		}
		b, _ := z.br.Peek(8)
		if len(b) == 0 && z.frames > 0 {
			return io.EOF
		}
		if len(b) < 4 {
			return fmt.Errorf("read zstd frame at offset %d: truncated: %w", start, ErrMalformed)
		}
		magic := binary.LittleEndian.Uint32(b)
		if magic&zstdSkippableMask == zstdSkippableBase {
			if len(b) < 8 {
				return fmt.Errorf("read zstd skippable frame at offset %d: truncated: %w", start, ErrMalformed)
			}
			n := int64(binary.LittleEndian.Uint32(b[4:]))
			z.br.Discard(8)
			if m, _ := io.CopyN(io.Discard, z.br, n); m != n {
				return fmt.Errorf("read zstd skippable frame at offset %d: truncated: %w", start, ErrMalformed)
			}
			continue
		}
		if magic != zstdMagic {
			if z.frames > 0 {
				return fmt.Errorf("read zstd frame at offset %d: trailing data after last frame: %w", start, ErrMalformed)
			}
			return fmt.Errorf("read zstd frame: not zstd data (magic %#08x): %w", magic, ErrMalformed)
		}
		z.frames++
		if z.onFrame != nil {
			z.onFrame(start, z.u)
		}
		z.fr = frameReader{br: z.br}
		if err := z.dec.Reset(&z.fr); err != nil {
			return fmt.Errorf("start zstd frame at offset %d: %v: %w", start, err, ErrMalformed)
		}
		z.inFrame = true
		return nil
	}
}

// frameReader passes through exactly one zstd frame (RFC 8878 section
// 3.1.1) and then reports io.EOF, so the decoder never reads ahead into
// the next frame and frame boundaries are known without decoding.
type frameReader struct {
	br       *bufio.Reader
	state    int   // 0 header, 1 blocks, 2 checksum, 3 done
	left     int64 // bytes of the current piece still to pass through
	last     bool  // the block being passed is the frame's last
	checksum bool  // Content_Checksum_flag
	err      error
}

func (f *frameReader) done() bool { return f.state == 3 && f.left == 0 }

func (f *frameReader) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	for f.left == 0 {
		if err := f.next(); err != nil {
			f.err = err
			return 0, err
		}
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.br.Read(p)
	f.left -= int64(n)
	if err == io.EOF {
		if f.left > 0 {
			err = fmt.Errorf("read zstd frame: truncated: %w", ErrMalformed)
			f.err = err
			return n, err
		}
		err = nil
	}
	return n, err
}

// next sizes the next piece of the frame: the frame header, a block
// (header plus content), or the checksum.
func (f *frameReader) next() error {
	truncated := fmt.Errorf("read zstd frame: truncated: %w", ErrMalformed)
	switch f.state {
	case 0:
		b, _ := f.br.Peek(5)
		if len(b) < 5 {
			return truncated
		}
		fhd := b[4]
		if fhd&0x08 != 0 {
			return fmt.Errorf("read zstd frame header: reserved bit set: %w", ErrMalformed)
		}
		single := fhd&0x20 != 0
		n := int64(5)
		if !single {
			n++ // Window_Descriptor
		}
		n += [4]int64{0, 1, 2, 4}[fhd&3] // Dictionary_ID
		switch fcs := fhd >> 6; {
		case fcs == 0 && single:
			n++
		case fcs == 1:
			n += 2
		case fcs == 2:
			n += 4
		case fcs == 3:
			n += 8
		}
		f.checksum = fhd&0x04 != 0
		f.left, f.state = n, 1
	case 1:
		if f.last {
			if f.checksum {
				f.left, f.state = 4, 2
				return nil
			}
			f.state = 3
			return io.EOF
		}
		b, _ := f.br.Peek(3)
		if len(b) < 3 {
			return truncated
		}
		h := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		f.last = h&1 != 0
		size := int64(h >> 3)
		switch (h >> 1) & 3 {
		case 0, 2: // raw, compressed
		case 1: // RLE: one byte repeated size times
			size = 1
		default:
			return fmt.Errorf("read zstd block header: reserved block type: %w", ErrMalformed)
		}
		if size > zstdMaxBlockSize {
			return fmt.Errorf("read zstd block header: block of %d bytes exceeds 128 KiB: %w", size, ErrMalformed)
		}
		f.left = 3 + size
	case 2:
		f.state = 3
		return io.EOF
	default:
		return io.EOF
	}
	return nil
}
