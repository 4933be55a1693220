package tarindex

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/flate"
)

// gzip header flags, RFC 1952 section 2.3.1.
const (
	gzipFTEXT    = 1 << 0
	gzipFHCRC    = 1 << 1
	gzipFEXTRA   = 1 << 2
	gzipFNAME    = 1 << 3
	gzipFCOMMENT = 1 << 4
)

// gzipStream decodes a gzip stream member after member, reading from a
// *bufio.Reader so that flate, which reads byte by byte from an
// io.ByteReader, never consumes past the end of a member's deflate data.
// Build and the Reader share it: Build sets the hooks, the Reader starts
// it at an access point.
type gzipStream struct {
	br  *bufio.Reader
	pos func() int64 // absolute compressed offset of br's next byte

	sticky  sticky        // the first error, kept
	fr      io.ReadCloser // current member's inflater; nil between members
	verify  bool          // current member was read from its start: check CRC and ISIZE
	crc     uint32
	size    uint32
	members int   // members started
	u       int64 // uncompressed bytes produced

	// Build hooks; nil in the Reader.
	onMember     func(c, u int64)                                        // a member header starts at c
	onCheckpoint func(deflateStart, u int64, cp flate.InflateCheckpoint) // u: uncompressed offset of the member's start
	memberC      int64                                                   // compressed offset of the current member's deflate data
	memberU      int64                                                   // uncompressed offset of the current member's start
}

// resumeGzip starts a gzipStream inside a member at a deflate block
// boundary, with the window that precedes it.
func resumeGzip(br *bufio.Reader, p point, window []byte) *gzipStream {
	cp := flate.InflateCheckpoint{CompressedOffset: p.C, BitOffset: p.Bits, Window: window}
	return &gzipStream{br: br, fr: flate.NewReaderOpts(br, flate.WithResumeFrom(cp)), members: 1, u: p.U}
}

// Read returns decompressed bytes. Errors are sticky (see sticky).
func (z *gzipStream) Read(p []byte) (int, error) { return z.sticky.read(p, z.read) }

func (z *gzipStream) read(p []byte) (int, error) {
	for {
		if z.fr == nil {
			if err := z.startMember(); err != nil {
				return 0, err
			}
		}
		n, err := z.fr.Read(p)
		if n > 0 && z.verify {
			z.crc = crc32.Update(z.crc, crc32.IEEETable, p[:n])
			z.size += uint32(n)
		}
		z.u += int64(n)
		switch {
		case err == io.EOF:
			if terr := z.finishMember(); terr != nil {
				return n, terr
			}
		case err != nil:
			return n, z.inflateError(err)
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (z *gzipStream) inflateError(err error) error {
	var ce flate.CorruptInputError
	switch {
	case errors.As(err, &ce):
		return fmt.Errorf("inflate gzip member: corrupt deflate data near compressed offset %d: %w", int64(ce), ErrMalformed)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("inflate gzip member: truncated stream: %w", ErrMalformed)
	}
	return fmt.Errorf("inflate gzip member: %w", err)
}

// startMember parses a member header (RFC 1952 section 2.3) and starts
// its inflater. At the end of the stream, after at least one member, it
// returns io.EOF.
func (z *gzipStream) startMember() error {
	start := int64(-1)
	if z.pos != nil {
		start = z.pos()
	}
	hdr, err := z.br.Peek(10)
	if len(hdr) == 0 && err == io.EOF && z.members > 0 {
		return io.EOF
	}
	if magic := []byte{0x1f, 0x8b}; !bytes.HasPrefix(magic, hdr[:min(len(hdr), 2)]) || len(hdr) < 2 && z.members > 0 {
		hdr = append(hdr, 0, 0)
		if z.members > 0 {
			return fmt.Errorf("read gzip header at offset %d: trailing data after last member: %w", start, ErrMalformed)
		}
		return fmt.Errorf("read gzip header: not gzip data (magic %#x %#x): %w", hdr[0], hdr[1], ErrMalformed)
	}
	if len(hdr) < 10 {
		return fmt.Errorf("read gzip header at offset %d: truncated: %w", start, ErrMalformed)
	}
	if hdr[2] != 8 {
		return fmt.Errorf("read gzip header at offset %d: compression method %d is not deflate: %w", start, hdr[2], ErrMalformed)
	}
	flg := hdr[3]
	if flg&0xe0 != 0 {
		return fmt.Errorf("read gzip header at offset %d: reserved flag bits set: %w", start, ErrMalformed)
	}
	hcrc := crc32.Update(0, crc32.IEEETable, hdr)
	z.br.Discard(10)
	read := func(n int) ([]byte, error) {
		b := make([]byte, n)
		if _, err := io.ReadFull(z.br, b); err != nil {
			return nil, fmt.Errorf("read gzip header at offset %d: truncated: %w", start, ErrMalformed)
		}
		hcrc = crc32.Update(hcrc, crc32.IEEETable, b)
		return b, nil
	}
	if flg&gzipFEXTRA != 0 {
		b, err := read(2)
		if err != nil {
			return err
		}
		if _, err := read(int(binary.LittleEndian.Uint16(b))); err != nil {
			return err
		}
	}
	for _, f := range []byte{gzipFNAME, gzipFCOMMENT} {
		if flg&f == 0 {
			continue
		}
		// zero-terminated ISO 8859-1 string; bounded so a missing NUL
		// cannot make us buffer the blob.
		for i := 0; ; i++ {
			b, err := read(1)
			if err != nil {
				return err
			}
			if b[0] == 0 {
				break
			}
			if i > 1<<16 {
				return fmt.Errorf("read gzip header at offset %d: name or comment too long: %w", start, ErrMalformed)
			}
		}
	}
	if flg&gzipFHCRC != 0 {
		want := hcrc & 0xffff
		b, err := read(2)
		if err != nil {
			return err
		}
		if got := uint32(binary.LittleEndian.Uint16(b)); got != want {
			return fmt.Errorf("read gzip header at offset %d: header CRC mismatch: %w", start, ErrMalformed)
		}
	}
	z.members++
	z.verify, z.crc, z.size = true, 0, 0
	z.memberU = z.u
	if z.onMember != nil {
		z.onMember(start, z.u)
	}
	if z.onCheckpoint != nil {
		z.memberC = z.pos()
		var excess int64 // see fixCheckpoint
		z.fr = flate.NewReaderOpts(z.br, flate.WithEobCallback(func(cp flate.InflateCheckpoint) {
			cp, excess = fixCheckpoint(cp, z.pos()-z.memberC, excess)
			z.onCheckpoint(z.memberC, z.memberU, cp)
		}))
	} else {
		z.fr = flate.NewReaderOpts(z.br)
	}
	return nil
}

// finishMember reads the 8-byte trailer (CRC-32, ISIZE) and checks it
// when the member was decoded from its start.
func (z *gzipStream) finishMember() error {
	z.fr = nil
	var t [8]byte
	if _, err := io.ReadFull(z.br, t[:]); err != nil {
		return fmt.Errorf("read gzip trailer: truncated stream: %w", ErrMalformed)
	}
	if !z.verify {
		return nil
	}
	if got, want := z.crc, binary.LittleEndian.Uint32(t[:4]); got != want {
		return fmt.Errorf("check gzip member %d: CRC-32 %08x, trailer says %08x: %w", z.members, got, want, ErrMalformed)
	}
	if got, want := z.size, binary.LittleEndian.Uint32(t[4:]); got != want {
		return fmt.Errorf("check gzip member %d: size mod 2^32 is %d, trailer says %d: %w", z.members, got, want, ErrMalformed)
	}
	return nil
}

// fixCheckpoint corrects the compressed position of a checkpoint.
//
// klauspost/compress v1.20.4 counts the bytes left in the bit buffer
// twice when a stored block starts (dataBlock adds nb>>3 to roffset
// although moreBits counted them when they were read), so after such a
// block every reported position is too far by the bytes counted so far.
// The error only grows, only inside dataBlock, and the callback of that
// same stored block sees an empty bit buffer, so its reported bit
// position minus the bytes really consumed is exactly 8 × the error;
// every other callback sees that difference minus the bits still
// buffered. consumed is what the inflater has really read from this
// member's deflate data (the *bufio.Reader is in sync with it when the
// callback runs); excess is the running error, kept per member. If the
// library is fixed, excess stays zero and this does nothing.
func fixCheckpoint(cp flate.InflateCheckpoint, consumed, excess int64) (flate.InflateCheckpoint, int64) {
	bitPos := cp.CompressedOffset*8 + int64(cp.BitOffset)
	if d := bitPos - consumed*8; d > 0 {
		excess = max(excess, (d+7)/8)
	}
	bitPos -= excess * 8
	cp.CompressedOffset, cp.BitOffset = bitPos/8, uint8(bitPos&7)
	return cp, excess
}
