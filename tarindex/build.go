package tarindex

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/klauspost/compress/flate"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultSpan is the default distance, in uncompressed bytes, between
// access points. It was chosen from BenchmarkColdRead4K (see
// docs/benchmarks.md): a cold 4 KiB read decodes on average half a span
// plus a chunk; 3 MiB measured a 7.8 ms median on a 2-core VM, where
// 4 MiB missed the 10 ms target, and keeps the stored windows at about
// 1.2 % of a 2:1 compressed blob, where 2 MiB exceeded the 1.5 % budget.
const DefaultSpan = 3 << 20

// chunkSize is the unit of the Reader's cache and of the CRC-32C check of
// decompressed data.
const chunkSize = 256 << 10

// plainChunkSize is the unit of the CRC-32C check of plain tar layers.
// Plain tar is read straight from the blob, so a chunk costs a pread and
// a CRC, with no decompression to amortise: a smaller unit keeps a cold
// 4 KiB read cheap (BenchmarkReadPlain) for 4 bytes per 64 KiB of index.
const plainChunkSize = 64 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BuildOptions tunes Build. The zero value works.
type BuildOptions struct {
	// DiffID, when set, is checked against the digest of the
	// uncompressed stream (the config's rootfs.diff_ids entry).
	DiffID digest.Digest
	// Span is the distance in uncompressed bytes between access points;
	// zero picks DefaultSpan. Values below 64 KiB are raised to 64 KiB.
	Span int64
	// Progress, when set, is called with compressed bytes read so far.
	// It is called from Build's goroutine, about once per MiB.
	Progress func(n int64)
	// Limits bound what one layer may make Build keep in memory; the
	// zero value picks the defaults documented on Limits.
	Limits Limits
}

// Limits bound the index of one layer, so that a hostile layer (a tar
// bomb of millions of empty entries, names or xattrs of megabytes) makes
// Build fail with an error wrapping ErrLimit instead of exhausting
// memory. Memory stays proportional to the entries below the limits:
// about 150 bytes per entry plus its names, xattrs and sparse map. Zero
// fields pick the defaults; docs/security.md explains each.
type Limits struct {
	// MaxEntries bounds the tar entries of a layer; default
	// DefaultMaxEntries.
	MaxEntries int
	// MaxNameBytes bounds an entry's cleaned name and link target;
	// default DefaultMaxNameBytes.
	MaxNameBytes int
	// MaxXattrBytes bounds the keys plus values of one entry's xattrs;
	// default DefaultMaxXattrBytes.
	MaxXattrBytes int
	// MaxIndexBytes bounds the estimated memory of all entries of the
	// layer (fixed part, names, link targets, xattrs, sparse maps);
	// default DefaultMaxIndexBytes.
	MaxIndexBytes int64
}

// Default limits. The largest layers of common images hold a few
// hundred thousand entries (a TeX or node_modules layer); ten times that
// still indexes in well under a gigabyte.
const (
	DefaultMaxEntries    = 2_000_000
	DefaultMaxNameBytes  = 4096 // PATH_MAX: what open(2) and symlink(2) accept
	DefaultMaxXattrBytes = 1 << 20
	DefaultMaxIndexBytes = 1 << 30
)

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxNameBytes <= 0 {
		l.MaxNameBytes = DefaultMaxNameBytes
	}
	if l.MaxXattrBytes <= 0 {
		l.MaxXattrBytes = DefaultMaxXattrBytes
	}
	if l.MaxIndexBytes <= 0 {
		l.MaxIndexBytes = DefaultMaxIndexBytes
	}
	return l
}

// entryOverhead estimates an Entry's fixed memory: the struct, its slot
// in a grown slice and its name's share of the string headers.
const entryOverhead = 160

// check returns an error wrapping ErrLimit if e breaks a per-entry
// limit, and e's estimated memory.
func (l Limits) check(e *Entry) (int64, error) {
	if len(e.Name) > l.MaxNameBytes || len(e.Linkname) > l.MaxNameBytes {
		return 0, fmt.Errorf("name or link target of %d bytes, limit %d: %w", max(len(e.Name), len(e.Linkname)), l.MaxNameBytes, ErrLimit)
	}
	x := 0
	for _, kv := range e.Xattrs {
		x += len(kv.Key) + len(kv.Value)
	}
	if x > l.MaxXattrBytes {
		return 0, fmt.Errorf("xattrs of %d bytes, limit %d: %w", x, l.MaxXattrBytes, ErrLimit)
	}
	return entryOverhead + int64(len(e.Name)+len(e.Linkname)+x+40*len(e.Xattrs)+16*len(e.Sparse)), nil
}

// Build reads the blob once, sequentially, and indexes it. It verifies
// the blob against desc.Digest and desc.Size and, when opts.DiffID is
// set, the uncompressed stream against it; on any mismatch it returns an
// error and no Index.
func Build(ctx context.Context, blob io.ReaderAt, desc ocispec.Descriptor, opts BuildOptions) (*Index, error) {
	ix, err := build(ctx, blob, desc, opts)
	if err != nil {
		return nil, fmt.Errorf("index layer %s: %w", desc.Digest, err)
	}
	return ix, nil
}

func build(ctx context.Context, blob io.ReaderAt, desc ocispec.Descriptor, opts BuildOptions) (*Index, error) {
	var cr *blobCounter
	ix, err := build1(ctx, blob, desc, opts, &cr)
	// A blob longer than its descriptor, or a cancelled context, shows
	// up downstream as a decoding error; report the cause instead.
	if err != nil && cr != nil && cr.err != nil {
		return nil, cr.err
	}
	// A blob that fails to decode because it is not the blob the
	// descriptor names (damaged, or swapped) should say so: finish
	// hashing it, and report the mismatch rather than its symptom.
	if err != nil && cr != nil && !errors.Is(err, ErrDigestMismatch) {
		if _, cerr := io.Copy(io.Discard, cr); cerr == nil && cr.n == desc.Size {
			if got := digest.NewDigest(desc.Digest.Algorithm(), cr.h); got != desc.Digest {
				return nil, fmt.Errorf("check blob digest: got %s (%v): %w", got, err, ErrDigestMismatch)
			}
		}
	}
	return ix, err
}

func build1(ctx context.Context, blob io.ReaderAt, desc ocispec.Descriptor, opts BuildOptions, crp **blobCounter) (*Index, error) {
	comp, err := CompressionOf(desc.MediaType)
	if err != nil {
		return nil, err
	}
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("check descriptor digest: %w", err)
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("check descriptor size %d: %w", desc.Size, ErrDigestMismatch)
	}
	diffAlg := digest.Canonical
	if opts.DiffID != "" {
		if err := opts.DiffID.Validate(); err != nil {
			return nil, fmt.Errorf("check diffID: %w", err)
		}
		diffAlg = opts.DiffID.Algorithm()
	}
	span := opts.Span
	if span == 0 {
		span = DefaultSpan
	}
	span = max(span, 64<<10)

	ix := &Index{
		MediaType:   desc.MediaType,
		Digest:      desc.Digest,
		BlobSize:    desc.Size,
		compression: comp,
		span:        span,
		chunkSize:   chunkSize,
	}
	if comp == Uncompressed {
		ix.chunkSize = plainChunkSize
	}

	// Compressed side: blob -> counting, hashing reader -> big bufio.
	cr := &blobCounter{
		ctx:      ctx,
		r:        io.NewSectionReader(blob, 0, desc.Size+1), // one extra byte to notice a longer blob
		limit:    desc.Size,
		h:        desc.Digest.Algorithm().Hash(),
		progress: opts.Progress,
	}
	*crp = cr
	br := bufio.NewReaderSize(cr, 1<<20)
	pos := func() int64 { return cr.n - int64(br.Buffered()) }

	uc := &streamCounter{h: diffAlg.Hash(), chunk: ix.chunkSize}
	var stream io.Reader
	var wins windowWriter
	var werr error // from compressing a window inside the inflate callback
	addPoint := func(p point) {
		if n := len(ix.points); n > 0 && p.U <= ix.points[n-1].U {
			return
		}
		ix.points = append(ix.points, p)
		uc.boundaries = append(uc.boundaries, p.U)
	}
	switch comp {
	case Uncompressed:
		if b, _ := br.Peek(4); len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
			return nil, fmt.Errorf("read tar: blob starts with the gzip magic but media type %q is uncompressed tar: %w", desc.MediaType, ErrMalformed)
		} else if len(b) == 4 && bytes.Equal(b, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			return nil, fmt.Errorf("read tar: blob starts with the zstd magic but media type %q is uncompressed tar: %w", desc.MediaType, ErrMalformed)
		}
		stream = br
	case Gzip:
		z := &gzipStream{br: br, pos: pos}
		z.onMember = func(c, u int64) {
			if len(ix.points) == 0 || u-ix.points[len(ix.points)-1].U >= span {
				addPoint(point{U: u, C: c, Kind: pointStart})
			}
		}
		z.onCheckpoint = func(deflateStart, memberU int64, cp flate.InflateCheckpoint) {
			u := memberU + cp.UncompressedOffset
			if cp.Final || u-ix.points[len(ix.points)-1].U < span || werr != nil {
				return
			}
			off, n, err := wins.add(cp.Window)
			if err != nil {
				werr = err
				return
			}
			addPoint(point{U: u, C: deflateStart + cp.CompressedOffset, Bits: cp.BitOffset, Kind: pointInflate,
				winOff: off, winLen: n, winCRC: crc32.Checksum(cp.Window, castagnoli)})
		}
		stream = z
	case Zstd:
		z, err := newZstdStream(br)
		if err != nil {
			return nil, err
		}
		defer z.Close()
		z.pos = pos
		z.onFrame = func(c, u int64) {
			if len(ix.points) == 0 || u-ix.points[len(ix.points)-1].U >= span {
				addPoint(point{U: u, C: c, Kind: pointStart})
			}
		}
		stream = z
	}
	uc.r = stream

	if err := scanTar(uc, ix, opts.Limits.withDefaults()); err != nil {
		return nil, err
	}
	if werr != nil {
		return nil, werr
	}
	// The diffID covers the whole stream, including what follows the
	// end-of-archive marker.
	if _, err := io.Copy(io.Discard, uc); err != nil {
		return nil, fmt.Errorf("read past end of archive: %w", err)
	}
	// For compressed blobs the decoder stops at its own end; make sure
	// nothing follows it (gzip and zstd already report trailing garbage)
	// and that every byte went through the digest.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, err
	}
	if cr.n != desc.Size {
		return nil, fmt.Errorf("check blob size: read %d bytes, descriptor says %d: %w", cr.n, desc.Size, ErrDigestMismatch)
	}
	if opts.Progress != nil {
		opts.Progress(cr.n)
	}
	if got := digest.NewDigest(desc.Digest.Algorithm(), cr.h); got != desc.Digest {
		return nil, fmt.Errorf("check blob digest: got %s: %w", got, ErrDigestMismatch)
	}
	ix.DiffID = digest.NewDigest(diffAlg, uc.h)
	if opts.DiffID != "" && ix.DiffID != opts.DiffID {
		return nil, fmt.Errorf("check diffID: got %s, want %s: %w", ix.DiffID, opts.DiffID, ErrDiffIDMismatch)
	}
	ix.TarSize = uc.n
	uc.finish()
	ix.chunkCRC = uc.crcs
	ix.windows = wins.buf
	if comp == Uncompressed {
		ix.points = nil
	}
	if n := ix.computeChunkBase(); n != len(ix.chunkCRC) {
		return nil, fmt.Errorf("build index: %d chunk checksums for %d chunks (internal error)", len(ix.chunkCRC), n)
	}
	ix.entryCount = len(ix.Entries)
	return ix, nil
}

// windowWriter stores gzip windows flate-compressed, back to back: a
// window is the 32 KiB of text before a checkpoint and compresses about
// as well as the layer does, which keeps the index small.
type windowWriter struct {
	buf []byte
	fw  *flate.Writer
}

func (w *windowWriter) add(win []byte) (off, n int, err error) {
	var b bytes.Buffer
	if w.fw == nil {
		if w.fw, err = flate.NewWriter(&b, flate.DefaultCompression); err != nil {
			return 0, 0, fmt.Errorf("compress window: %w", err)
		}
	} else {
		w.fw.Reset(&b)
	}
	if _, err := w.fw.Write(win); err != nil {
		return 0, 0, fmt.Errorf("compress window: %w", err)
	}
	if err := w.fw.Close(); err != nil {
		return 0, 0, fmt.Errorf("compress window: %w", err)
	}
	off = len(w.buf)
	w.buf = append(w.buf, b.Bytes()...)
	return off, b.Len(), nil
}

// blobCounter reads the blob, hashing and counting what it reads, and
// refuses to read more than limit bytes (a longer blob fails the size
// check instead of being silently accepted).
type blobCounter struct {
	ctx      context.Context
	r        io.Reader
	n, limit int64
	h        hash.Hash
	progress func(int64)
	err      error // sticky: context cancelled or blob too long
}

func (c *blobCounter) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return 0, err
	}
	n, err := c.r.Read(p)
	if c.n+int64(n) > c.limit {
		c.err = fmt.Errorf("check blob size: longer than the descriptor's %d bytes: %w", c.limit, ErrDigestMismatch)
		return 0, c.err
	}
	c.h.Write(p[:n])
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(c.n)
	}
	return n, err
}

// streamCounter sits between the decompressor and archive/tar. It counts
// uncompressed bytes (so each entry's data offset is the count when
// tar.Reader.Next returns), hashes them for the diffID, computes the
// CRC-32C of every chunk of every segment, and captures the raw header
// bytes of the entry being parsed so sparse maps can be read.
type streamCounter struct {
	r io.Reader
	n int64
	h hash.Hash

	chunk      int64
	boundaries []int64 // segment starts not yet reached
	chunkStart int64
	crc        uint32
	crcs       []uint32

	capFrom   int64 // capture bytes at or after this offset...
	capturing bool  // ...while Next runs
	capture   []byte
}

func (c *streamCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	b := p[:n]
	c.h.Write(b)
	if c.capturing && c.n+int64(n) > c.capFrom && len(c.capture) < maxCapture {
		c.capture = append(c.capture, b[max(c.capFrom-c.n, 0):]...)
	}
	for {
		c.cross()
		if len(b) == 0 {
			break
		}
		end := c.chunkStart + c.chunk
		if len(c.boundaries) > 0 && c.boundaries[0] < end {
			end = c.boundaries[0]
		}
		k := min(int64(len(b)), end-c.n)
		c.crc = crc32.Update(c.crc, castagnoli, b[:k])
		c.n += k
		b = b[k:]
		if c.n == end && c.n > c.chunkStart {
			c.crcs = append(c.crcs, c.crc)
			c.crc, c.chunkStart = 0, end
		}
	}
	return n, err
}

// cross ends the current chunk at a segment start reached exactly: a
// chunk never spans two segments.
func (c *streamCounter) cross() {
	for len(c.boundaries) > 0 && c.boundaries[0] <= c.n {
		if c.boundaries[0] == c.n && c.n > c.chunkStart {
			c.crcs = append(c.crcs, c.crc)
			c.crc, c.chunkStart = 0, c.n
		}
		c.boundaries = c.boundaries[1:]
	}
}

// finish records the CRC of the last, partial chunk.
func (c *streamCounter) finish() {
	c.cross()
	if c.n > c.chunkStart {
		c.crcs = append(c.crcs, c.crc)
		c.chunkStart = c.n
	}
}

// maxCapture bounds the header bytes kept for one entry; archive/tar
// refuses PAX and GNU long-name records over 1 MiB, and GNU sparse maps
// are bounded the same way.
const maxCapture = 4 << 20

// scanTar parses the tar stream and appends its entries to ix, within
// lim.
func scanTar(uc *streamCounter, ix *Index, lim Limits) error {
	tr := tar.NewReader(uc)
	var next int64 // where the next header starts, if the tar is well formed
	var mem int64  // estimated memory of ix.Entries
	for {
		uc.capturing, uc.capFrom, uc.capture = true, next, uc.capture[:0]
		hdr, err := tr.Next()
		uc.capturing = false
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("read tar header at offset %d: truncated archive: %w", next, ErrMalformed)
			}
			if errors.Is(err, ErrMalformed) || errors.Is(err, ErrZstdWindow) || errors.Is(err, ErrDigestMismatch) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return fmt.Errorf("read tar header at offset %d: %v: %w", next, err, ErrMalformed)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			next = align512(uc.n)
			continue
		}
		e, phys, err := makeEntry(hdr, uc.capture)
		if err != nil {
			return fmt.Errorf("read tar entry %q: %w", truncName(hdr.Name), err)
		}
		e.Offset = uc.n
		n, err := lim.check(&e)
		if err != nil {
			return fmt.Errorf("read tar entry %q: %w", truncName(e.Name), err)
		}
		if mem += n; mem > lim.MaxIndexBytes {
			return fmt.Errorf("read tar entry %d: entries need about %d bytes of memory, limit %d: %w", len(ix.Entries)+1, mem, lim.MaxIndexBytes, ErrLimit)
		}
		if len(ix.Entries) >= lim.MaxEntries {
			return fmt.Errorf("read tar entry %d: more than %d entries: %w", len(ix.Entries)+1, lim.MaxEntries, ErrLimit)
		}
		ix.Entries = append(ix.Entries, e)
		next = align512(e.Offset + phys)
	}
}

func align512(n int64) int64 { return (n + 511) &^ 511 }

// truncName shortens a name for an error message: a hostile name can be
// a megabyte long.
func truncName(s string) string {
	if len(s) <= 256 {
		return s
	}
	return s[:256] + "…"
}

// makeEntry converts a header to an Entry and returns the physical size
// of its data in the stream.
func makeEntry(hdr *tar.Header, raw []byte) (Entry, int64, error) {
	e := Entry{
		Name:      CleanName(hdr.Name),
		Type:      hdr.Typeflag,
		Mode:      uint32(hdr.Mode & 0o7777),
		UID:       hdr.Uid,
		GID:       hdr.Gid,
		Mtime:     hdr.ModTime.Unix(),
		MtimeNsec: uint32(hdr.ModTime.Nanosecond()),
	}
	if hdr.Mode < 0 || hdr.Uid < 0 || hdr.Gid < 0 || hdr.Size < 0 {
		return e, 0, fmt.Errorf("negative mode, uid, gid or size: %w", ErrMalformed)
	}
	// PAX uid and gid records are decimal of any length, but Linux ids
	// are 32 bits (and 2^32-1 is (uid_t)-1, "no change" to chown):
	// an id above that would be served truncated, as another owner.
	if hdr.Uid > math.MaxUint32 || hdr.Gid > math.MaxUint32 {
		return e, 0, fmt.Errorf("uid %d, gid %d: above 2^32-1: %w", hdr.Uid, hdr.Gid, ErrMalformed)
	}
	var phys int64
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		e.Type = tar.TypeReg
		e.Size = hdr.Size
		phys = hdr.Size
		sp, isSparse, err := sparseMap(hdr, raw)
		if err != nil {
			return e, 0, err
		}
		if isSparse {
			e.Sparse = sp
			phys = 0
			for _, r := range sp {
				phys += r.Length
			}
		}
	case tar.TypeDir, tar.TypeFifo:
	case tar.TypeSymlink:
		e.Linkname = hdr.Linkname
	case tar.TypeLink:
		e.Linkname = CleanName(hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		if hdr.Devmajor < 0 || hdr.Devminor < 0 || hdr.Devmajor > 1<<32-1 || hdr.Devminor > 1<<32-1 {
			return e, 0, fmt.Errorf("device number out of range: %w", ErrMalformed)
		}
		e.Devmajor, e.Devminor = uint32(hdr.Devmajor), uint32(hdr.Devminor)
	default:
		return e, 0, fmt.Errorf("unsupported tar entry type %q: %w", hdr.Typeflag, ErrMalformed)
	}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			e.Xattrs = append(e.Xattrs, Xattr{Key: name, Value: v})
		}
	}
	sort.Slice(e.Xattrs, func(i, j int) bool { return e.Xattrs[i].Key < e.Xattrs[j].Key })
	return e, phys, nil
}
