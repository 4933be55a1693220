package hugemem_test

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/ocifs/ocifs/internal/hugemem"
)

func TestAlloc(t *testing.T) {
	for _, n := range []int{0, 1, 4096, hugemem.PageSize - 1, hugemem.PageSize, hugemem.PageSize + 1, 5 << 20} {
		b, free := hugemem.Alloc(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("Alloc(%d): len %d cap %d", n, len(b), cap(b))
		}
		for i := range b {
			if b[i] != 0 {
				t.Fatalf("Alloc(%d)[%d] = %d, want zeroed memory", n, i, b[i])
			}
			b[i] = byte(i)
		}
		if n > 0 && uintptr(unsafe.Pointer(&b[0]))%hugemem.PageSize != 0 && runtime.GOOS == "linux" {
			t.Errorf("Alloc(%d) at %p: not aligned to %d", n, &b[0], hugemem.PageSize)
		}
		free()
	}
}

// TestAllocAdvised checks that Linux sees the mapping advised for huge
// pages (VmFlags "hg" in /proc/self/smaps): the reason this package
// exists.
func TestAllocAdvised(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("huge pages are advised on Linux only")
	}
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage"); err != nil {
		t.Skip("this kernel has no transparent huge pages")
	}
	b, free := hugemem.Alloc(3 << 20)
	defer free()
	start := uintptr(unsafe.Pointer(&b[0]))
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	inMapping := false
	for l := range strings.SplitSeq(string(smaps), "\n") {
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(l, "%x-%x ", &lo, &hi); n == 2 {
			inMapping = lo == start
			continue
		}
		if inMapping && strings.HasPrefix(l, "VmFlags:") {
			if !slices.Contains(strings.Fields(l), "hg") {
				t.Errorf("the mapping at %#x is not advised for huge pages: %s", start, l)
			}
			return
		}
	}
	t.Fatalf("no mapping starts at %#x in /proc/self/smaps", start)
}

func TestSlab(t *testing.T) {
	const size = 256 << 10
	s := hugemem.NewSlab(size)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				b := s.Get()
				if len(b) != size || cap(b) != size {
					t.Errorf("Get: len %d cap %d, want %d", len(b), cap(b), size)
					return
				}
				// Each buffer is ours alone until Put: fill it and
				// check nobody else wrote meanwhile.
				mark := byte(g*50 + i)
				for j := 0; j < size; j += 4096 {
					b[j] = mark
				}
				for j := 0; j < size; j += 4096 {
					if b[j] != mark {
						t.Errorf("buffer shared between two Gets")
						return
					}
				}
				s.Put(b[:10])
			}
		})
	}
	wg.Wait()
	s.Put(make([]byte, 100)) // another size: ignored
	if b := s.Get(); cap(b) != size {
		t.Errorf("Get after a foreign Put: cap %d", cap(b))
	}
}
