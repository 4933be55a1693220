package registrytest

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DownMode is how a FaultProxy that is down treats connections.
type DownMode int

const (
	// Refuse closes the listener and every open connection: new
	// connections are refused at once (ECONNREFUSED).
	Refuse DownMode = iota + 1
	// Hang accepts connections and requests but never answers them
	// until Up (or the client gives up).
	Hang
)

// Lie is a way a FaultProxy misreports what it sends.
type Lie int

const (
	// NoLie answers truthfully.
	NoLie Lie = iota
	// LieContentRange shifts the start of a 206's Content-Range by one
	// byte, keeping the body: the bytes are not the ones announced.
	LieContentRange
	// LieShortBody drops Content-Length and ends the body cleanly
	// halfway, as if it were complete.
	LieShortBody
	// LiePartialAs200 answers a 206's part with status 200 and no
	// Content-Range, as if the part were the whole blob.
	LiePartialAs200
	// LieCorrupt flips the bits of the first byte of every body, all
	// headers kept: only a digest check can tell.
	LieCorrupt
	// LieLongBody sends one byte more than a 206's Content-Range says,
	// without Content-Length.
	LieLongBody
)

// FaultProxy is a reverse proxy to one upstream server whose faults are
// switched on and off by tests. It counts what it answers. Its methods
// are safe for concurrent use.
type FaultProxy struct {
	// URL is the proxy's base URL, http://127.0.0.1:PORT.
	URL string
	// Host is the proxy's HOST:PORT.
	Host string

	t         testing.TB
	upstream  *url.URL
	transport http.RoundTripper
	srv       *http.Server

	mu          sync.Mutex
	ln          net.Listener
	conns       map[net.Conn]struct{}
	down        DownMode
	up          chan struct{} // closed while up
	fail5xx     int
	tooMany     int
	retryAfter  time.Duration
	drops       int
	dropAfter   int64
	ignoreRange bool
	rejectMulti bool
	lie         Lie
	rate        int64
	nextSend    time.Time // when the slow link is free again
	ranges      []string

	requests   atomic.Int64
	bytes      atomic.Int64
	multiRange atomic.Int64
}

// ProxyOptions configure a FaultProxy. The zero value works.
type ProxyOptions struct {
	// Transport sends the proxied requests, e.g. one trusting a test
	// registry's certificate; nil is a plain http.Transport.
	Transport http.RoundTripper
}

// NewFaultProxy starts a proxy on 127.0.0.1 in front of upstream (a
// base URL such as "http://127.0.0.1:5000") and stops it in t.Cleanup.
// It starts up, with no fault.
func NewFaultProxy(t testing.TB, upstream string, opts ProxyOptions) *FaultProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatalf("NewFaultProxy: parse %q: %v", upstream, err)
	}
	tr := opts.Transport
	if tr == nil {
		tr = &http.Transport{DisableCompression: true}
	}
	p := &FaultProxy{t: t, upstream: u, transport: tr, conns: map[net.Conn]struct{}{}, up: make(chan struct{})}
	close(p.up)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("NewFaultProxy: listen: %v", err)
	}
	p.ln = ln
	p.Host = ln.Addr().String()
	p.URL = "http://" + p.Host
	p.srv = &http.Server{
		Handler: http.HandlerFunc(p.serve),
		ConnState: func(c net.Conn, s http.ConnState) {
			p.mu.Lock()
			defer p.mu.Unlock()
			switch s {
			case http.StateNew:
				p.conns[c] = struct{}{}
			case http.StateClosed, http.StateHijacked:
				delete(p.conns, c)
			}
		},
		ErrorLog: nil,
	}
	go p.srv.Serve(ln)
	t.Cleanup(func() {
		p.Up()
		p.srv.Close()
	})
	return p
}

// Fail answers the next n requests with 500.
func (p *FaultProxy) Fail(n int) { p.set(func() { p.fail5xx = n }) }

// TooMany answers the next n requests with 429 and a Retry-After of
// after (whole seconds, at least 1 if after > 0; 0 sends "0").
func (p *FaultProxy) TooMany(n int, after time.Duration) {
	p.set(func() { p.tooMany, p.retryAfter = n, after })
}

// Drop cuts the connection of the next n responses after sending after
// bytes of their bodies.
func (p *FaultProxy) Drop(n int, after int64) { p.set(func() { p.drops, p.dropAfter = n, after }) }

// IgnoreRange makes the proxy strip Range from requests, so that every
// answer is a 200 with the whole body.
func (p *FaultProxy) IgnoreRange(on bool) { p.set(func() { p.ignoreRange = on }) }

// RejectMultiRange answers requests for several ranges with 400.
func (p *FaultProxy) RejectMultiRange(on bool) { p.set(func() { p.rejectMulti = on }) }

// SetLie makes every later answer lie the given way (NoLie: stop).
func (p *FaultProxy) SetLie(l Lie) { p.set(func() { p.lie = l }) }

// Rate limits the bodies of all answers together to bytesPerSec (0: no
// limit), like a slow link.
func (p *FaultProxy) Rate(bytesPerSec int64) { p.set(func() { p.rate = bytesPerSec }) }

// Down takes the proxy down the given way until Up.
func (p *FaultProxy) Down(mode DownMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down != 0 {
		return
	}
	p.down = mode
	p.up = make(chan struct{})
	if mode == Refuse {
		p.ln.Close()
		for c := range p.conns {
			c.Close()
		}
	}
}

// Up brings the proxy back on the same address.
func (p *FaultProxy) Up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down == 0 {
		return
	}
	if p.down == Refuse {
		ln, err := net.Listen("tcp", p.Host)
		if err != nil {
			p.t.Errorf("FaultProxy.Up: listen %s: %v", p.Host, err)
		} else {
			p.ln = ln
			go p.srv.Serve(ln)
		}
	}
	p.down = 0
	close(p.up)
}

// Reset clears every fault and counter.
func (p *FaultProxy) Reset() {
	p.Up()
	p.set(func() {
		p.fail5xx, p.tooMany, p.drops = 0, 0, 0
		p.ignoreRange, p.rejectMulti, p.lie, p.rate = false, false, NoLie, 0
		p.ranges = nil
	})
	p.requests.Store(0)
	p.bytes.Store(0)
	p.multiRange.Store(0)
}

// Requests returns the number of requests received.
func (p *FaultProxy) Requests() int64 { return p.requests.Load() }

// Bytes returns the number of body bytes sent to clients.
func (p *FaultProxy) Bytes() int64 { return p.bytes.Load() }

// MultiRangeRequests returns the number of requests that asked for
// more than one range.
func (p *FaultProxy) MultiRangeRequests() int64 { return p.multiRange.Load() }

// RangeHeaders returns the Range header of every request received ("" for
// none), in order.
func (p *FaultProxy) RangeHeaders() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ranges...)
}

func (p *FaultProxy) set(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f()
}

// take decrements *n if it is positive and reports whether it was.
func take(n *int) bool {
	if *n > 0 {
		*n--
		return true
	}
	return false
}

func (p *FaultProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	p.mu.Lock()
	p.ranges = append(p.ranges, r.Header.Get("Range"))
	up := p.up
	p.mu.Unlock()
	select {
	case <-up:
	case <-r.Context().Done():
		return
	}

	p.mu.Lock()
	fail, tooMany, after := take(&p.fail5xx), take(&p.tooMany), p.retryAfter
	drop, dropAfter := take(&p.drops), p.dropAfter
	ignoreRange, rejectMulti, lie := p.ignoreRange, p.rejectMulti, p.lie
	p.mu.Unlock()

	rng := r.Header.Get("Range")
	if strings.Contains(rng, ",") {
		p.multiRange.Add(1)
		if rejectMulti {
			http.Error(w, "multiple ranges not supported", http.StatusBadRequest)
			return
		}
	}
	switch {
	case fail:
		http.Error(w, "injected fault", http.StatusInternalServerError)
		return
	case tooMany:
		w.Header().Set("Retry-After", strconv.Itoa(int((after+time.Second-1)/time.Second)))
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	}

	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.upstream.Scheme, p.upstream.Host
	out.Host = p.upstream.Host
	if ignoreRange {
		out.Header.Del("Range")
	}
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()

	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		if lu, err := url.Parse(loc); err == nil && lu.Host == p.upstream.Host {
			lu.Scheme, lu.Host = "http", p.Host
			h.Set("Location", lu.String())
		}
	}
	status := resp.StatusCode
	limit := int64(-1)
	if status == http.StatusPartialContent {
		switch lie {
		case LieContentRange:
			var a, z, total int64
			if _, err := fmtSscanRange(resp.Header.Get("Content-Range"), &a, &z, &total); err == nil {
				h.Set("Content-Range", "bytes "+strconv.FormatInt(a+1, 10)+"-"+strconv.FormatInt(z+1, 10)+"/"+strconv.FormatInt(total, 10))
			}
		case LiePartialAs200:
			h.Del("Content-Range")
			status = http.StatusOK
		}
	}
	extra := lie == LieLongBody && status == http.StatusPartialContent
	if extra {
		h.Del("Content-Length")
	}
	if lie == LieShortBody && (status == http.StatusOK || status == http.StatusPartialContent) && resp.ContentLength > 0 {
		h.Del("Content-Length")
		limit = resp.ContentLength / 2
	}
	w.WriteHeader(status)
	if limit >= 0 || extra {
		// Sent now, the headers have no Content-Length: the body is
		// chunked and its wrong end looks right.
		http.NewResponseController(w).Flush()
	}
	if r.Method == http.MethodHead {
		return
	}
	body := io.Reader(resp.Body)
	if lie == LieCorrupt {
		body = &corruptReader{r: body}
	}
	if extra {
		body = io.MultiReader(body, strings.NewReader("!"))
	}
	p.copyBody(w, body, limit, drop, dropAfter)
}

// corruptReader flips the first byte it reads.
type corruptReader struct {
	r    io.Reader
	done bool
}

func (c *corruptReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && !c.done {
		p[0] ^= 0xff
		c.done = true
	}
	return n, err
}

// copyBody sends body to w at the link's rate, stopping after limit
// bytes (limit >= 0) or cutting the connection after dropAfter bytes.
func (p *FaultProxy) copyBody(w http.ResponseWriter, body io.Reader, limit int64, drop bool, dropAfter int64) {
	rc := http.NewResponseController(w)
	if limit >= 0 {
		body = io.LimitReader(body, limit)
	}
	buf := make([]byte, 32<<10)
	var sent int64
	for {
		chunk := buf
		p.mu.Lock()
		rate := p.rate
		p.mu.Unlock()
		if rate > 0 {
			chunk = buf[:max(min(int64(len(buf)), rate/20), 1)]
		}
		if drop && int64(len(chunk)) > dropAfter-sent {
			chunk = chunk[:max(dropAfter-sent, 0)]
		}
		if drop && len(chunk) == 0 {
			rc.Flush()
			panic(http.ErrAbortHandler) // net/http closes the connection
		}
		n, err := body.Read(chunk)
		if n > 0 {
			p.throttle(int64(n))
			if _, werr := w.Write(chunk[:n]); werr != nil {
				return
			}
			sent += int64(n)
			p.bytes.Add(int64(n))
			if rate > 0 {
				rc.Flush()
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				panic(http.ErrAbortHandler)
			}
			return
		}
	}
}

// throttle waits until n more bytes fit into the link's rate, shared by
// all answers.
func (p *FaultProxy) throttle(n int64) {
	p.mu.Lock()
	if p.rate <= 0 {
		p.mu.Unlock()
		return
	}
	now := time.Now()
	start := p.nextSend
	if start.Before(now) {
		start = now
	}
	p.nextSend = start.Add(time.Duration(n) * time.Second / time.Duration(p.rate))
	wait := time.Until(p.nextSend)
	p.mu.Unlock()
	time.Sleep(wait)
}

// fmtSscanRange parses "bytes A-Z/TOTAL".
func fmtSscanRange(s string, a, z, total *int64) (int, error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	span, tot, ok2 := strings.Cut(rest, "/")
	first, last, ok3 := strings.Cut(span, "-")
	if !ok || !ok2 || !ok3 {
		return 0, errors.New("malformed Content-Range")
	}
	var err error
	if *a, err = strconv.ParseInt(first, 10, 64); err != nil {
		return 0, err
	}
	if *z, err = strconv.ParseInt(last, 10, 64); err != nil {
		return 1, err
	}
	if *total, err = strconv.ParseInt(tot, 10, 64); err != nil {
		return 2, err
	}
	return 3, nil
}
