package tarindex

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"hash/fnv"
	"math/rand"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// rngFor seeds a generator from the test's name, so failures reproduce.
func rngFor(t testing.TB) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	return rand.New(rand.NewSource(int64(h.Sum64())))
}

// corpus is pseudo-text larger than a deflate window: slices of it at
// random offsets compress like real text (about 3x).
var corpus = func() []byte {
	r := rand.New(rand.NewSource(1))
	words := strings.Fields("the quick brown fox jumps over lazy dog lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua func return if else for range var const type struct interface package import error nil true false int64 string byte")
	var b bytes.Buffer
	for b.Len() < 4<<20 {
		b.WriteString(words[r.Intn(len(words))])
		if r.Intn(12) == 0 {
			b.WriteString(strconv.Itoa(r.Int()))
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()
}()

// content returns n bytes: text from the corpus, or random bytes.
func content(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	if r.Intn(4) == 0 {
		r.Read(b)
		return b
	}
	for i := 0; i < n; {
		off := r.Intn(len(corpus) - 4096)
		i += copy(b[i:], corpus[off:off+1+r.Intn(4095)])
	}
	return b
}

// sparseFile describes a sparse file written with raw headers, since
// archive/tar cannot write them.
type sparseFile struct {
	name string
	size int64
	regs []SparseRegion
	data [][]byte
}

func randomSparse(r *rand.Rand, name string) sparseFile {
	f := sparseFile{name: name}
	var pos int64
	for n := r.Intn(8); n >= 0; n-- {
		pos += int64(r.Intn(3 << 20))
		l := int64(r.Intn(256 << 10))
		f.regs = append(f.regs, SparseRegion{Offset: pos, Length: l})
		f.data = append(f.data, content(r, int(l)))
		pos += l
	}
	f.size = pos + int64(r.Intn(1<<20))
	return f
}

// octal writes a zero-padded octal field.
func octal(b []byte, v int64) {
	s := strconv.FormatInt(v, 8)
	copy(b, strings.Repeat("0", len(b)-1-len(s))+s)
}

func finishHeader(b []byte) {
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// rawHeader builds a header block; gnu selects the GNU magic.
func rawHeader(name string, typ byte, size int64, gnu bool) []byte {
	b := make([]byte, 512)
	copy(b[:100], name)
	octal(b[100:108], 0o644)
	octal(b[108:116], 1000)
	octal(b[116:124], 1000)
	octal(b[124:136], size)
	octal(b[136:148], tarEpoch.Unix())
	b[156] = typ
	if gnu {
		copy(b[257:], "ustar  \x00")
	} else {
		copy(b[257:], "ustar\x0000")
	}
	return b
}

var tarEpoch = time.Unix(1700000000, 0)

func pad512(b *bytes.Buffer) {
	if n := b.Len() % 512; n != 0 {
		b.Write(make([]byte, 512-n))
	}
}

// writePAX1Sparse appends a GNU PAX 1.0 sparse file (GNU tar
// --sparse --posix).
func writePAX1Sparse(out *bytes.Buffer, f sparseFile) {
	var m strings.Builder
	fmt.Fprintf(&m, "%d\n", len(f.regs))
	var phys int64
	for _, r := range f.regs {
		fmt.Fprintf(&m, "%d\n%d\n", r.Offset, r.Length)
		phys += r.Length
	}
	mapLen := align512(int64(m.Len()))
	recs := paxRecords([][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", f.name}, {"GNU.sparse.realsize", strconv.FormatInt(f.size, 10)}})
	h := rawHeader("PaxHeaders/x", tar.TypeXHeader, int64(len(recs)), false)
	finishHeader(h)
	out.Write(h)
	out.WriteString(recs)
	pad512(out)
	h = rawHeader("GNUSparseFile.0/x", tar.TypeReg, mapLen+phys, false)
	finishHeader(h)
	out.Write(h)
	out.WriteString(m.String())
	pad512(out)
	for _, d := range f.data {
		out.Write(d)
	}
	pad512(out)
}

// writePAX01Sparse appends a GNU PAX 0.1 sparse file (map in a record).
func writePAX01Sparse(out *bytes.Buffer, f sparseFile) {
	var fields []string
	var phys int64
	for _, r := range f.regs {
		fields = append(fields, strconv.FormatInt(r.Offset, 10), strconv.FormatInt(r.Length, 10))
		phys += r.Length
	}
	recs := paxRecords([][2]string{{"GNU.sparse.major", "0"}, {"GNU.sparse.minor", "1"}, {"GNU.sparse.numblocks", strconv.Itoa(len(f.regs))}, {"GNU.sparse.map", strings.Join(fields, ",")}, {"GNU.sparse.name", f.name}, {"GNU.sparse.size", strconv.FormatInt(f.size, 10)}})
	h := rawHeader("PaxHeaders/x", tar.TypeXHeader, int64(len(recs)), false)
	finishHeader(h)
	out.Write(h)
	out.WriteString(recs)
	pad512(out)
	h = rawHeader("GNUSparseFile.0/x", tar.TypeReg, phys, false)
	finishHeader(h)
	out.Write(h)
	for _, d := range f.data {
		out.Write(d)
	}
	pad512(out)
}

// writeOldGNUSparse appends an old GNU 'S' sparse file, with extension
// blocks when the map has more than four regions.
func writeOldGNUSparse(out *bytes.Buffer, f sparseFile) {
	var phys int64
	for _, r := range f.regs {
		phys += r.Length
	}
	if len(f.name) > 100 {
		h := rawHeader("././@LongLink", tar.TypeGNULongName, int64(len(f.name)+1), true)
		finishHeader(h)
		out.Write(h)
		out.WriteString(f.name + "\x00")
		pad512(out)
	}
	h := rawHeader(f.name, tar.TypeGNUSparse, phys, true)
	octal(h[483:495], f.size)
	regs := f.regs
	put := func(b []byte, n int) {
		for i := 0; i < n && len(regs) > 0; i++ {
			octal(b[i*24:i*24+12], regs[0].Offset)
			octal(b[i*24+12:i*24+24], regs[0].Length)
			regs = regs[1:]
		}
	}
	put(h[386:482], 4)
	var ext [][]byte
	for len(regs) > 0 {
		e := make([]byte, 512)
		put(e, 21)
		ext = append(ext, e)
	}
	if len(ext) > 0 {
		h[482] = 1
	}
	finishHeader(h)
	out.Write(h)
	for i, e := range ext {
		if i < len(ext)-1 {
			e[504] = 1
		}
		out.Write(e)
	}
	for _, d := range f.data {
		out.Write(d)
	}
	pad512(out)
}

func paxRecords(kv [][2]string) string {
	var s strings.Builder
	for _, p := range kv {
		rec := " " + p[0] + "=" + p[1] + "\n"
		l := len(rec) + 1
		for len(strconv.Itoa(l))+len(rec) != l {
			l++
		}
		s.WriteString(strconv.Itoa(l) + rec)
	}
	return s.String()
}

// layerSpec tunes randomLayer.
type layerSpec struct {
	files   int
	maxSize int // largest regular file
	sparse  bool
}

// randomLayer returns a tar stream with directories, files of random
// sizes, long names, symlinks, hardlinks, devices, fifos, xattrs and,
// when asked, sparse files in the three GNU formats.
func randomLayer(r *rand.Rand, spec layerSpec) []byte {
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	dirs := []string{"."}
	var files []string
	for i := 0; i < spec.files; i++ {
		dir := dirs[r.Intn(len(dirs))]
		name := fmt.Sprintf("%s/f%d", dir, i)
		if r.Intn(10) == 0 {
			name = fmt.Sprintf("%s/%s%d", dir, strings.Repeat("long-name-", 10+r.Intn(20)), i)
		}
		hdr := &tar.Header{Name: name, Mode: int64(r.Intn(0o7777)), Uid: r.Intn(70000), Gid: r.Intn(70000), ModTime: tarEpoch.Add(time.Duration(r.Int63n(1e18))), Typeflag: tar.TypeReg}
		var data []byte
		switch k := r.Intn(20); {
		case k < 2:
			hdr.Typeflag = tar.TypeDir
			hdr.Name = fmt.Sprintf("%s/d%d", dir, i)
			dirs = append(dirs, hdr.Name)
		case k < 3:
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = "../" + strings.Repeat("t", 1+r.Intn(150))
		case k < 4 && len(files) > 0:
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = files[r.Intn(len(files))]
		case k < 5:
			hdr.Typeflag = []byte{tar.TypeChar, tar.TypeBlock, tar.TypeFifo}[r.Intn(3)]
			if hdr.Typeflag != tar.TypeFifo {
				hdr.Devmajor, hdr.Devminor = int64(r.Intn(300)), int64(r.Intn(70000))
			}
		case k < 6 && spec.sparse:
			tw.Flush()
			f := randomSparse(r, name)
			[]func(*bytes.Buffer, sparseFile){writePAX1Sparse, writePAX01Sparse, writeOldGNUSparse}[r.Intn(3)](&out, f)
			files = append(files, name)
			continue
		default:
			size := r.Intn(4096)
			if r.Intn(12) == 0 {
				size = r.Intn(spec.maxSize + 1)
			}
			data = content(r, size)
			hdr.Size = int64(size)
			files = append(files, name)
		}
		if r.Intn(10) == 0 {
			hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.b": "2", "SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20"}
		}
		must(tw.WriteHeader(hdr))
		_, err := tw.Write(data)
		must(err)
	}
	must(tw.Close())
	return out.Bytes()
}

// compress encodes raw with c; parts > 1 splits it into that many gzip
// members or zstd frames at random points.
func compress(r *rand.Rand, raw []byte, c Compression, parts int) []byte {
	cuts := []int{0}
	for i := 1; i < parts; i++ {
		cuts = append(cuts, r.Intn(len(raw)+1))
	}
	cuts = append(cuts, len(raw))
	for i := 1; i < len(cuts); i++ { // sort
		for j := i; j > 0 && cuts[j] < cuts[j-1]; j-- {
			cuts[j], cuts[j-1] = cuts[j-1], cuts[j]
		}
	}
	var out bytes.Buffer
	for i := 0; i+1 < len(cuts); i++ {
		part := raw[cuts[i]:cuts[i+1]]
		switch c {
		case Uncompressed:
			out.Write(part)
		case Gzip:
			zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
			zw.Name = "part" // exercise FNAME
			zw.Write(part)
			zw.Close()
		case Zstd:
			zw, _ := zstd.NewWriter(&out, zstd.WithEncoderCRC(true))
			zw.Write(part)
			zw.Close()
		}
	}
	return out.Bytes()
}

var mediaTypes = map[Compression]string{
	Uncompressed: ocispec.MediaTypeImageLayer,
	Gzip:         ocispec.MediaTypeImageLayerGzip,
	Zstd:         ocispec.MediaTypeImageLayerZstd,
}

func descFor(blob []byte, c Compression) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaTypes[c], Digest: digest.FromBytes(blob), Size: int64(len(blob))}
}

func mustBuild(t testing.TB, blob []byte, c Compression, opts BuildOptions) *Index {
	t.Helper()
	ix, err := Build(context.Background(), bytes.NewReader(blob), descFor(blob, c), opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return ix
}
