package httprange

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/registrytest"
)

// testBlob returns size random bytes seeded from t.Name().
func testBlob(t *testing.T, size int) []byte {
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	r := rand.New(rand.NewPCG(h.Sum64(), 1))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// serveBlob starts a server answering GET /blob with data, ranges
// (and multi-ranges) included, as http.ServeContent does.
func serveBlob(t *testing.T, data []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// fastOptions keeps failing tests short.
func fastOptions() Options {
	return Options{
		MaxWait:     1500 * time.Millisecond,
		IdleTimeout: 300 * time.Millisecond,
		Backoff:     10 * time.Millisecond,
		MaxBackoff:  100 * time.Millisecond,
		Limiter:     NewLimiter(4),
	}
}

func newBlob(t *testing.T, url string, size int, opts Options) *Blob {
	t.Helper()
	b, err := New(context.Background(), http.DefaultClient.Do, url, int64(size), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// spans are the reads every fault case makes: start, middle, end,
// one byte, and one across the end.
var spans = []struct{ off, n int }{{0, 1000}, {12345, 40000}, {199000, 1000}, {777, 1}, {199990, 100}}

const blobSize = 200000

func TestReadAtFaults(t *testing.T) {
	tests := []struct {
		name    string
		fault   func(p *registrytest.FaultProxy)
		wantErr error // nil: every read must return the right bytes
		check   func(t *testing.T, p *registrytest.FaultProxy, b *Blob)
	}{
		{name: "none", fault: func(*registrytest.FaultProxy) {}},
		{name: "500 three times", fault: func(p *registrytest.FaultProxy) { p.Fail(3) }},
		{name: "dropped connections", fault: func(p *registrytest.FaultProxy) { p.Drop(3, 100) }},
		{name: "dropped before the body", fault: func(p *registrytest.FaultProxy) { p.Drop(2, 0) }},
		{
			name:  "range ignored",
			fault: func(p *registrytest.FaultProxy) { p.IgnoreRange(true) },
			check: func(t *testing.T, p *registrytest.FaultProxy, b *Blob) {
				if !b.IgnoresRange() {
					t.Errorf("IgnoresRange() = false after 200 answers")
				}
				if h := p.RangeHeaders(); h[len(h)-1] != "" {
					t.Errorf("last Range header = %q, want none once the server is known to ignore it", h[len(h)-1])
				}
			},
		},
		{name: "multi-range refused", fault: func(p *registrytest.FaultProxy) { p.RejectMultiRange(true) }},
		{name: "slow link", fault: func(p *registrytest.FaultProxy) { p.Rate(2 << 20) }},
		{
			name:  "429 with Retry-After",
			fault: func(p *registrytest.FaultProxy) { p.TooMany(1, time.Second) },
			check: func(t *testing.T, p *registrytest.FaultProxy, b *Blob) {
				if n := p.Requests(); n != int64(len(spans))+1 {
					t.Errorf("requests = %d, want %d (one 429, then one per read)", n, len(spans)+1)
				}
			},
		},
		{name: "500 forever", fault: func(p *registrytest.FaultProxy) { p.Fail(1 << 30) }, wantErr: ErrGaveUp},
		{name: "down, refusing", fault: func(p *registrytest.FaultProxy) { p.Down(registrytest.Refuse) }, wantErr: ErrGaveUp},
		{name: "down, hanging", fault: func(p *registrytest.FaultProxy) { p.Down(registrytest.Hang) }, wantErr: ErrGaveUp},
		{name: "wrong Content-Range", fault: func(p *registrytest.FaultProxy) { p.SetLie(registrytest.LieContentRange) }, wantErr: ErrBadResponse},
		{name: "short body", fault: func(p *registrytest.FaultProxy) { p.SetLie(registrytest.LieShortBody) }, wantErr: ErrGaveUp},
		{name: "body longer than its range", fault: func(p *registrytest.FaultProxy) { p.SetLie(registrytest.LieLongBody) }, wantErr: ErrBadResponse},
		{name: "part as 200", fault: func(p *registrytest.FaultProxy) { p.SetLie(registrytest.LiePartialAs200) }, wantErr: ErrBadResponse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := testBlob(t, blobSize)
			srv := serveBlob(t, data)
			p := registrytest.NewFaultProxy(t, srv.URL, registrytest.ProxyOptions{})
			p.RejectMultiRange(true)
			tc.fault(p)
			opts := fastOptions()
			if tc.name == "429 with Retry-After" {
				opts.MaxWait = 5 * time.Second
			}
			b := newBlob(t, p.URL+"/blob", blobSize, opts)
			reads := spans
			if tc.wantErr != nil {
				reads = spans[:2] // each waits up to MaxWait
			}
			for _, s := range reads {
				buf := make([]byte, s.n)
				start := time.Now()
				n, err := b.ReadAt(buf, int64(s.off))
				if took := time.Since(start); took > opts.MaxWait+2*opts.IdleTimeout+time.Second {
					t.Errorf("ReadAt(%d, %d) took %s, more than MaxWait allows", s.off, s.n, took)
				}
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Errorf("ReadAt(%d, %d) = %d, %v; want error %v", s.off, s.n, n, err, tc.wantErr)
					} else if strings.Contains(err.Error(), "\n") {
						t.Errorf("error %q is more than one line", err)
					}
					if n != 0 {
						t.Errorf("ReadAt(%d, %d) = %d bytes with an error", s.off, s.n, n)
					}
					continue
				}
				want := data[s.off:min(s.off+s.n, blobSize)]
				if s.off+s.n > blobSize {
					if n != len(want) || err != io.EOF {
						t.Errorf("ReadAt(%d, %d) past the end = %d, %v; want %d, EOF", s.off, s.n, n, err, len(want))
					}
				} else if err != nil {
					t.Errorf("ReadAt(%d, %d): %v", s.off, s.n, err)
					continue
				}
				if !bytes.Equal(buf[:n], want) {
					t.Errorf("ReadAt(%d, %d) returned wrong bytes", s.off, s.n)
				}
			}
			if n := p.MultiRangeRequests(); n != 0 {
				t.Errorf("%d multi-range requests sent", n)
			}
			if tc.check != nil {
				tc.check(t, p, b)
			}
		})
	}
}

func TestOutageRecovers(t *testing.T) {
	data := testBlob(t, blobSize)
	p := registrytest.NewFaultProxy(t, serveBlob(t, data).URL, registrytest.ProxyOptions{})
	opts := fastOptions()
	opts.MaxWait = 10 * time.Second
	b := newBlob(t, p.URL+"/blob", blobSize, opts)
	for _, mode := range []registrytest.DownMode{registrytest.Refuse, registrytest.Hang} {
		p.Down(mode)
		time.AfterFunc(500*time.Millisecond, p.Up)
		buf := make([]byte, 5000)
		if _, err := b.ReadAt(buf, 100); err != nil {
			t.Fatalf("ReadAt during outage %d: %v", mode, err)
		}
		if !bytes.Equal(buf, data[100:5100]) {
			t.Fatalf("ReadAt after outage %d: wrong bytes", mode)
		}
	}
}

func TestRedirect(t *testing.T) {
	data := testBlob(t, blobSize)
	var registryHits, storageHits atomic.Int64
	var generation atomic.Int64 // the valid signature
	var storageDenies atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/v2/blob", func(w http.ResponseWriter, r *http.Request) {
		registryHits.Add(1)
		http.Redirect(w, r, fmt.Sprintf("/storage/blob?sig=%d", generation.Load()), http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/storage/blob", func(w http.ResponseWriter, r *http.Request) {
		storageHits.Add(1)
		if storageDenies.Load() || r.URL.Query().Get("sig") != fmt.Sprint(generation.Load()) {
			http.Error(w, "signature expired", http.StatusForbidden)
			return
		}
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(data))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	b := newBlob(t, srv.URL+"/v2/blob", blobSize, fastOptions())

	read := func(off int) error {
		buf := make([]byte, 1000)
		if _, err := b.ReadAt(buf, int64(off)); err != nil {
			return err
		}
		if !bytes.Equal(buf, data[off:off+1000]) {
			t.Fatalf("ReadAt(%d): wrong bytes", off)
		}
		return nil
	}
	for i := range 3 {
		if err := read(i * 1000); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	if got := registryHits.Load(); got != 1 {
		t.Errorf("registry hits after 3 reads = %d, want 1 (the redirect is reused)", got)
	}
	generation.Add(1) // the signed URL expires
	if err := read(5000); err != nil {
		t.Fatalf("read after expiry: %v", err)
	}
	if got := registryHits.Load(); got != 2 {
		t.Errorf("registry hits after expiry = %d, want 2 (one fresh redirect)", got)
	}
	storageDenies.Store(true)
	before := registryHits.Load()
	err := read(9000)
	if !errors.Is(err, ErrStatus) {
		t.Fatalf("read with storage refusing = %v, want ErrStatus", err)
	}
	if got := registryHits.Load() - before; got != 1 {
		t.Errorf("registry hits while storage refuses = %d, want 1 (go back once)", got)
	}
}

func TestLimiter(t *testing.T) {
	data := testBlob(t, blobSize)
	var inFlight, peak atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(30 * time.Millisecond)
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	opts := fastOptions()
	opts.Limiter = NewLimiter(2)
	// Two blobs share the limiter, as two layers of one registry do.
	b1 := newBlob(t, srv.URL+"/a", blobSize, opts)
	b2 := newBlob(t, srv.URL+"/b", blobSize, opts)
	var wg sync.WaitGroup
	for i := range 12 {
		b := b1
		if i%2 == 1 {
			b = b2
		}
		wg.Go(func() {
			buf := make([]byte, 100)
			if _, err := b.ReadAt(buf, int64(i*100)); err != nil {
				t.Errorf("ReadAt: %v", err)
			} else if !bytes.Equal(buf, data[i*100:i*100+100]) {
				t.Errorf("ReadAt(%d): wrong bytes", i*100)
			}
		})
	}
	wg.Wait()
	if got := peak.Load(); got != 2 {
		t.Errorf("peak concurrent requests = %d, want 2", got)
	}
}

func TestCancel(t *testing.T) {
	data := testBlob(t, blobSize)
	p := registrytest.NewFaultProxy(t, serveBlob(t, data).URL, registrytest.ProxyOptions{})
	p.Down(registrytest.Hang)
	opts := fastOptions()
	opts.MaxWait, opts.IdleTimeout = time.Minute, time.Minute
	b := newBlob(t, p.URL+"/blob", blobSize, opts)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := b.ReadAtContext(ctx, make([]byte, 10), 0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ReadAtContext after cancel = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("cancelled read returned after %s", took)
	}

	// Close ends reads in progress, including those waiting for a slot
	// that a read of another blob holds.
	opts.Limiter = NewLimiter(1)
	holder := newBlob(t, p.URL+"/blob", blobSize, opts)
	go holder.ReadAt(make([]byte, 10), 0)
	time.Sleep(100 * time.Millisecond)
	b2 := newBlob(t, p.URL+"/blob", blobSize, opts)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := b2.ReadAt(make([]byte, 10), 0)
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	b2.Close()
	for range 3 {
		select {
		case err := <-errs:
			if err == nil {
				t.Errorf("ReadAt after Close succeeded against a hanging server")
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("ReadAt still blocked 2s after Close")
		}
	}
	holder.Close()
}

func TestReadRanges(t *testing.T) {
	data := testBlob(t, blobSize)
	p := registrytest.NewFaultProxy(t, serveBlob(t, data).URL, registrytest.ProxyOptions{})
	p.RejectMultiRange(true)
	opts := fastOptions()
	opts.MergeGap = 1000
	b := newBlob(t, p.URL+"/blob", blobSize, opts)
	ranges := []Range{
		{Off: 5000, Buf: make([]byte, 100)},
		{Off: 0, Buf: make([]byte, 10)},
		{Off: 500, Buf: make([]byte, 10)},  // 490 bytes after the previous: merged
		{Off: 5050, Buf: make([]byte, 10)}, // inside the first: merged
		{Off: 100000, Buf: make([]byte, 99999)},
		{Off: 3000, Buf: nil},
	}
	if err := b.ReadRanges(context.Background(), ranges); err != nil {
		t.Fatalf("ReadRanges: %v", err)
	}
	for _, r := range ranges {
		if !bytes.Equal(r.Buf, data[r.Off:r.Off+int64(len(r.Buf))]) {
			t.Errorf("range %d+%d: wrong bytes", r.Off, len(r.Buf))
		}
	}
	got := p.RangeHeaders()
	want := map[string]bool{"bytes=0-509": true, "bytes=5000-5099": true, "bytes=100000-199998": true}
	if len(got) != len(want) {
		t.Errorf("Range headers = %q, want %d requests", got, len(want))
	}
	for _, h := range got {
		if !want[h] {
			t.Errorf("unexpected Range header %q (want one of %v)", h, want)
		}
	}
	if err := b.ReadRanges(context.Background(), []Range{{Off: blobSize - 1, Buf: make([]byte, 2)}}); err == nil {
		t.Errorf("ReadRanges past the end succeeded")
	}
}

func TestParseContentRange(t *testing.T) {
	vectors := []struct {
		in                 string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-0/1", 0, 0, 1, true},
		{"bytes 10-19/20", 10, 19, 20, true},
		{"bytes 10-19/*", 0, 0, 0, false}, // the size must be known to check it
		{"bytes 10-9/20", 0, 0, 0, false},
		{"bytes 10-20/20", 0, 0, 0, false},
		{"bytes -1-3/20", 0, 0, 0, false},
		{"bits 0-1/2", 0, 0, 0, false},
		{"bytes 0-1", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, v := range vectors {
		f, l, tot, err := parseContentRange(v.in)
		if (err == nil) != v.ok || (v.ok && (f != v.first || l != v.last || tot != v.total)) {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v; want %d, %d, %d, ok %v", v.in, f, l, tot, err, v.first, v.last, v.total, v.ok)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	f.Add("bytes 0-0/1")
	f.Add("bytes 10-19/20")
	f.Add("bytes 9223372036854775806-9223372036854775806/9223372036854775807")
	f.Fuzz(func(t *testing.T, s string) {
		first, last, total, err := parseContentRange(s)
		if err == nil && !(0 <= first && first <= last && last < total) {
			t.Errorf("parseContentRange(%q) = %d, %d, %d: inconsistent", s, first, last, total)
		}
	})
}

func TestMergeRanges(t *testing.T) {
	r := func(off, n int) Range { return Range{Off: int64(off), Buf: make([]byte, n)} }
	tests := []struct {
		name   string
		ranges []Range
		gap    int64
		want   [][2]int64
	}{
		{"empty", nil, 10, nil},
		{"apart", []Range{r(100, 10), r(0, 10)}, 10, [][2]int64{{0, 10}, {100, 110}}},
		{"within gap", []Range{r(0, 10), r(20, 10)}, 10, [][2]int64{{0, 30}}},
		{"touching, no gap", []Range{r(0, 10), r(10, 10)}, -1, [][2]int64{{0, 20}}},
		{"contained", []Range{r(0, 100), r(10, 10)}, -1, [][2]int64{{0, 100}}},
		{"empty buffers skipped", []Range{r(0, 0), r(50, 0)}, 10, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spans := mergeRanges(tc.ranges, tc.gap)
			var got [][2]int64
			for _, s := range spans {
				got = append(got, [2]int64{s.off, s.end})
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("mergeRanges = %v, want %v", got, tc.want)
			}
		})
	}
}
