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

// ZstdMaxWindow bounds the window of a zstd frame, in bytes. The
// decoder allocates a ring of the window the frame header declares
// (plus two blocks, about 260 KiB) when the frame's first block is
// decoded, whatever the frame then holds: without a bound a 20-byte
// frame header makes each decoder allocate up to the 512 MiB
// klauspost/compress accepts by default, and a Reader keeps several
// decoders per layer (ReaderOptions.Decoders). 32 MiB (window log 25)
// passes what image tools write: klauspost/compress's encoder (used by
// containerd, BuildKit, podman and go-containerregistry) writes 8 MiB
// windows at most, and zstd(1) writes 8 MiB up to level 19 and 32 MiB
// at --ultra -20; only --ultra -21/-22 and --long (64 and 128 MiB)
// exceed it. So each zstd decoder costs at most about 32.3 MiB. A frame
// beyond the bound fails Build with an error wrapping ErrZstdWindow.
const ZstdMaxWindow = 32 << 20

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
	// alive, and the blob is read through frameReader anyway. The
	// window and memory bounds repeat frameReader's check of the frame
	// header (ZstdMaxWindow), so that the decoder's own allocation is
	// bounded even if the two ever disagree on a header.
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(ZstdMaxWindow), zstd.WithDecoderMaxMemory(ZstdMaxWindow))
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
			if errors.Is(err, ErrMalformed) || errors.Is(err, ErrZstdWindow) {
				return n, err
			}
			if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
				return n, fmt.Errorf("decode zstd frame %d: %v, limit %d bytes: %w", z.frames, err, ZstdMaxWindow, ErrZstdWindow)
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
			if errors.Is(err, ErrZstdWindow) {
				return err
			}
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

// frameWindow returns the window size a frame header declares (RFC 8878
// section 3.1.1.1.2): from the Window_Descriptor, or for a single
// segment frame the Frame_Content_Size, which the decoder then uses as
// its window. hdr is the whole frame header, magic included.
func frameWindow(hdr []byte, single bool, dictLen, fcsLen int64) uint64 {
	if !single {
		wd := hdr[5]
		exp, mantissa := uint64(wd>>3), uint64(wd&7)
		base := uint64(1) << (10 + exp)
		return base + base/8*mantissa
	}
	b := hdr[5+dictLen : 5+dictLen+fcsLen]
	var fcs uint64
	for i := len(b) - 1; i >= 0; i-- {
		fcs = fcs<<8 | uint64(b[i])
	}
	if fcsLen == 2 {
		fcs += 256 // RFC 8878 3.1.1.1.4: the 2-byte field is offset by 256
	}
	return fcs
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
		dictLen := [4]int64{0, 1, 2, 4}[fhd&3] // Dictionary_ID
		n += dictLen
		fcsLen := int64(0)
		switch fcs := fhd >> 6; {
		case fcs == 0 && single:
			fcsLen = 1
		case fcs == 1:
			fcsLen = 2
		case fcs == 2:
			fcsLen = 4
		case fcs == 3:
			fcsLen = 8
		}
		n += fcsLen
		hdr, _ := f.br.Peek(int(n))
		if int64(len(hdr)) < n {
			return truncated
		}
		if w := frameWindow(hdr, single, dictLen, fcsLen); w > ZstdMaxWindow {
			return fmt.Errorf("read zstd frame header: window of %d bytes, limit %d: %w", w, int64(ZstdMaxWindow), ErrZstdWindow)
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
