package fs_test

import (
	"archive/tar"
	"context"
	"syscall"
	"testing"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/fs"
	"github.com/ocifs/ocifs/tarindex"
)

// sparseVectors are the files of the sparse tests: holes before,
// between and after data, regions that touch (one run of data), data
// up to EOF, a file that is all hole, and an ordinary file.
var sparseVectors = []struct {
	name string
	size int64
	regs []tarindex.SparseRegion // nil: not sparse
}{
	{"holes", 64 << 10, []tarindex.SparseRegion{{Offset: 4096, Length: 100}, {Offset: 8192, Length: 4096}, {Offset: 12288, Length: 50}, {Offset: 40000, Length: 1}}},
	{"data-at-ends", 20000, []tarindex.SparseRegion{{Offset: 0, Length: 10}, {Offset: 19990, Length: 10}}},
	{"all-hole", 30000, []tarindex.SparseRegion{}},
	{"plain", 5000, nil},
}

// seekModel answers SEEK_DATA and SEEK_HOLE by looking at each byte in
// turn, as the definition in lseek(2) reads.
func seekModel(size int64, regs []tarindex.SparseRegion, off int64, whence int) (int64, syscall.Errno) {
	isData := func(p int64) bool {
		if regs == nil {
			return true
		}
		for _, r := range regs {
			if p >= r.Offset && p < r.Offset+r.Length {
				return true
			}
		}
		return false
	}
	if off >= size {
		return 0, syscall.ENXIO
	}
	for p := off; p < size; p++ {
		if isData(p) == (whence == unix.SEEK_DATA) {
			return p, 0
		}
	}
	if whence == unix.SEEK_DATA {
		return 0, syscall.ENXIO
	}
	return size, 0 // the hole at EOF
}

// seekOffsets are the offsets worth asking about: 0, each region's
// edges and their neighbours, and EOF's.
func seekOffsets(size int64, regs []tarindex.SparseRegion) []int64 {
	offs := []int64{0, 1, size - 1, size, size + 4096}
	for _, r := range regs {
		for _, p := range []int64{r.Offset, r.Offset + r.Length} {
			offs = append(offs, p-1, p, p+1)
		}
	}
	var out []int64
	for _, o := range offs {
		if o >= 0 {
			out = append(out, o)
		}
	}
	return out
}

// TestSparse checks st_blocks and SEEK_DATA/SEEK_HOLE of sparse files
// through the node bridge.
func TestSparse(t *testing.T) {
	l := &layerBuilder{}
	for _, v := range sparseVectors {
		l.add(tarindex.Entry{Name: v.name, Type: tar.TypeReg, Mode: 0o644, Size: v.size, Sparse: v.regs}, nil)
	}
	tree, c := merge(t, l)
	root := nodeFS(t, tree, c, fs.Options{})
	ctx := context.Background()

	// df counts data too: each file's data in 4 KiB blocks.
	var wantBlocks uint64
	for _, v := range sparseVectors {
		data := v.size
		if v.regs != nil {
			data = 0
			for _, r := range v.regs {
				data += r.Length
			}
		}
		wantBlocks += uint64(data+4095) / 4096
	}
	var sf fuse.StatfsOut
	if errno := root.Operations().(fusefs.NodeStatfser).Statfs(ctx, &sf); errno != 0 || sf.Blocks != wantBlocks {
		t.Errorf("Statfs = %d blocks, %v; want %d", sf.Blocks, errno, wantBlocks)
	}

	for _, v := range sparseVectors {
		t.Run(v.name, func(t *testing.T) {
			in, _ := walk(t, root, v.name)
			var ga fuse.AttrOut
			if errno := in.Operations().(fusefs.NodeGetattrer).Getattr(ctx, nil, &ga); errno != 0 {
				t.Fatalf("Getattr = %v", errno)
			}
			data := v.size
			if v.regs != nil {
				data = 0
				for _, r := range v.regs {
					data += r.Length
				}
			}
			if want := uint64(data+511) / 512; ga.Blocks != want || ga.Size != uint64(v.size) {
				t.Errorf("Getattr = size %d, blocks %d; want %d, %d (%d bytes of data)", ga.Size, ga.Blocks, v.size, want, data)
			}
			ls, ok := in.Operations().(fusefs.NodeLseeker)
			if !ok {
				t.Fatalf("%T is no NodeLseeker: go-fuse would answer SEEK_DATA and SEEK_HOLE as for a file without holes", in.Operations())
			}
			for _, whence := range []int{unix.SEEK_DATA, unix.SEEK_HOLE} {
				for _, off := range seekOffsets(v.size, v.regs) {
					got, errno := ls.Lseek(ctx, nil, uint64(off), uint32(whence))
					want, wantErr := seekModel(v.size, v.regs, off, whence)
					if errno != wantErr || (errno == 0 && int64(got) != want) {
						t.Errorf("Lseek(%d, whence %d) = %d, %v; want %d, %v", off, whence, got, errno, want, wantErr)
					}
				}
			}
		})
	}
}
