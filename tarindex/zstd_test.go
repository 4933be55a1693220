package tarindex

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// rawZstdFrame wraps data in one zstd frame of raw blocks (RFC 8878
// section 3.1.1.2) whose header is written by hand: hdr is everything
// after the magic (Frame_Header_Descriptor, Window_Descriptor or
// Frame_Content_Size), so a test can declare any window without the
// encoder choosing one.
func rawZstdFrame(data, hdr []byte) []byte {
	out := binary.LittleEndian.AppendUint32(nil, zstdMagic)
	out = append(out, hdr...)
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), zstdMaxBlockSize)
		h := uint32(n) << 3 // Block_Type 0: raw
		if n == len(data) {
			h |= 1 // Last_Block
		}
		out = append(out, byte(h), byte(h>>8), byte(h>>16))
		out = append(out, data[:n]...)
		data = data[n:]
	}
	return out
}

// windowDescriptor is the frame header (after the magic) of a frame
// with a Window_Descriptor of exponent exp and mantissa m: a window of
// 2^(10+exp) * (1 + m/8) bytes.
func windowDescriptor(exp, m byte) []byte { return []byte{0x00, exp<<3 | m} }

// TestZstdWindowLimit: a frame whose header declares a window above
// ZstdMaxWindow fails Build with ErrZstdWindow, naming the layer and
// the limit, before the decoder allocates it; frames at the limit and
// ordinary encoder output index and read back.
func TestZstdWindowLimit(t *testing.T) {
	raw := smallLayer(t)
	fcs8 := func(n uint64) []byte { // single segment, 8-byte Frame_Content_Size
		return binary.LittleEndian.AppendUint64([]byte{0xe0}, n)
	}
	encode := func(opts ...zstd.EOption) []byte {
		var b bytes.Buffer
		zw, err := zstd.NewWriter(&b, opts...)
		if err != nil {
			t.Fatalf("zstd.NewWriter: %v", err)
		}
		zw.Write(raw)
		if err := zw.Close(); err != nil {
			t.Fatalf("zstd close: %v", err)
		}
		return b.Bytes()
	}
	vectors := []struct {
		name   string
		blob   []byte
		window int64 // the window the error must name; 0: indexes fine
	}{
		{"default encoder", encode(), 0},
		{"encoder with 32 MiB window", encode(zstd.WithWindowSize(32 << 20)), 0},
		{"raw frame, 8 MiB window", rawZstdFrame(raw, windowDescriptor(13, 0)), 0},
		{"raw frame, 32 MiB window", rawZstdFrame(raw, windowDescriptor(15, 0)), 0},
		{"raw frame, 36 MiB window", rawZstdFrame(raw, windowDescriptor(15, 1)), 36 << 20},
		{"raw frame, 128 MiB window (zstd --long)", rawZstdFrame(raw, windowDescriptor(17, 0)), 128 << 20},
		{"raw frame, 3.75 TiB window", rawZstdFrame(raw, windowDescriptor(31, 7)), 1<<41 + 7<<38},
		{"single segment declaring 1 GiB", rawZstdFrame(raw, fcs8(1<<30)), 1 << 30},
		{"second frame over the limit", append(rawZstdFrame(raw[:512], windowDescriptor(13, 0)), rawZstdFrame(raw[512:], windowDescriptor(16, 0))...), 64 << 20},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			desc := descFor(tc.blob, Zstd)
			ix, err := Build(context.Background(), bytes.NewReader(tc.blob), desc, BuildOptions{Span: 64 << 10})
			if tc.window == 0 {
				if err != nil {
					t.Fatalf("Build = %v, want an index", err)
				}
				checkReadsBack(t, ix, tc.blob, raw)
				return
			}
			if !errors.Is(err, ErrZstdWindow) {
				t.Fatalf("Build = %v, want ErrZstdWindow", err)
			}
			for _, want := range []string{desc.Digest.String(), "window of " + itoa(tc.window) + " bytes", "limit " + itoa(ZstdMaxWindow)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Build error %q does not say %q", err, want)
				}
			}
		})
	}
}

// checkReadsBack reads every regular file of ix through a Reader and
// compares it with what archive/tar reads from raw.
func checkReadsBack(t *testing.T, ix *Index, blob, raw []byte) {
	t.Helper()
	rd := NewReader(ix, bytes.NewReader(blob), ReaderOptions{})
	defer rd.Close()
	tr := tar.NewReader(bytes.NewReader(raw))
	files := 0
	for i := range ix.Entries {
		e := &ix.Entries[i]
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("tar.Next: %v", err)
		}
		want, _ := io.ReadAll(tr)
		if e.Type != tar.TypeReg || hdr.Name != e.Name {
			continue
		}
		got := make([]byte, e.Size)
		if _, err := rd.ReadAt(e, got, 0); err != nil && err != io.EOF {
			t.Fatalf("ReadAt(%q) = %v", e.Name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("ReadAt(%q): %d bytes differ from the layer's", e.Name, len(got))
		}
		files++
	}
	if files == 0 {
		t.Fatalf("no file read back")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
