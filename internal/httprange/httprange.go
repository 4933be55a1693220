package httprange

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors, wrapped by the errors ReadAt and ReadRanges return.
var (
	// ErrBadResponse: the server answered with something other than the
	// bytes asked for (a wrong Content-Range, a body of the wrong
	// length, a Content-Length that is not the blob's size).
	ErrBadResponse = errors.New("httprange: bad response")
	// ErrGaveUp: the read kept failing for longer than Options.MaxWait.
	ErrGaveUp = errors.New("httprange: gave up")
	// ErrStatus: the server answered a status that retrying cannot fix
	// (404, 401 from the registry itself, ...).
	ErrStatus = errors.New("httprange: unexpected status")

	// errRedirectExpired: the redirected URL answered 401 or 403.
	errRedirectExpired = errors.New("redirected URL refused")
)

// Doer sends one request, e.g. (*http.Client).Do or the Do of a client
// that adds registry credentials.
type Doer func(*http.Request) (*http.Response, error)

// Defaults for the zero Options.
const (
	DefaultMaxWait       = 20 * time.Second
	DefaultIdleTimeout   = 10 * time.Second
	DefaultMaxConcurrent = 8
	DefaultMergeGap      = 64 << 10
	defaultBackoff       = 100 * time.Millisecond
	defaultMaxBackoff    = 2 * time.Second
)

// Options tune a Blob. The zero value works.
type Options struct {
	// Name names the blob in errors and logs (e.g. its digest); empty
	// uses the URL without its query, which may hold a signature.
	Name string
	// MaxWait bounds how long one read keeps retrying: once it has
	// spent this long, the next failure is final. Zero is
	// DefaultMaxWait.
	MaxWait time.Duration
	// IdleTimeout bounds how long one attempt waits for the response
	// headers or for the next body bytes. Zero is DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Limiter bounds concurrent requests; nil shares one Limiter of
	// MaxConcurrent slots per URL host among all Blobs.
	Limiter *Limiter
	// MaxConcurrent is the size of the per-host Limiter when Limiter is
	// nil. Zero is DefaultMaxConcurrent.
	MaxConcurrent int
	// MergeGap is how far apart two ranges given to ReadRanges may be
	// and still be read by one request. Zero is DefaultMergeGap; a
	// negative value merges only touching or overlapping ranges.
	MergeGap int64
	// Backoff is the first wait between attempts, doubled each time up
	// to MaxBackoff. Zero values use 100 ms and 2 s.
	Backoff, MaxBackoff time.Duration
	// Header is added to every request (e.g. User-Agent).
	Header http.Header
	// Logger gets one line per retried failure; nil logs nothing.
	Logger *slog.Logger
}

// Limiter bounds the number of requests in flight. It is safe for
// concurrent use.
type Limiter struct{ slots chan struct{} }

// NewLimiter returns a Limiter of n slots (at least 1).
func NewLimiter(n int) *Limiter {
	return &Limiter{slots: make(chan struct{}, max(n, 1))}
}

// acquire waits for a slot, or until ctx ends.
func (l *Limiter) acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (l *Limiter) release() { <-l.slots }

var (
	hostLimitersMu sync.Mutex
	hostLimiters   = map[string]*Limiter{}
)

// hostLimiter returns the Limiter shared by every Blob of host.
func hostLimiter(host string, n int) *Limiter {
	hostLimitersMu.Lock()
	defer hostLimitersMu.Unlock()
	l, ok := hostLimiters[host]
	if !ok {
		l = NewLimiter(n)
		hostLimiters[host] = l
	}
	return l
}

// Blob is one blob read with Range requests. It is safe for concurrent
// use.
type Blob struct {
	ctx    context.Context
	cancel context.CancelFunc
	do     Doer
	url    string
	size   int64
	opts   Options
	lim    *Limiter

	// redirected is the last URL a redirect led to (a storage URL),
	// reused until it answers 401 or 403.
	redirected atomic.Pointer[string]
	// noRange is set once the server answered a Range request with 200.
	noRange atomic.Bool
}

// New returns the blob of size bytes at rawURL, read through do. ctx
// bounds the blob's life: once it ends (or Close is called) every read
// fails promptly.
func New(ctx context.Context, do Doer, rawURL string, size int64, opts Options) (*Blob, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open blob: parse URL: %w", err)
	}
	if size < 0 {
		return nil, fmt.Errorf("open blob %q: negative size %d", rawURL, size)
	}
	if opts.Name == "" {
		r := *u
		r.RawQuery, r.User = "", nil
		opts.Name = r.String()
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.MergeGap == 0 {
		opts.MergeGap = DefaultMergeGap
	}
	if opts.Backoff <= 0 {
		opts.Backoff = defaultBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = defaultMaxBackoff
	}
	lim := opts.Limiter
	if lim == nil {
		lim = hostLimiter(u.Host, opts.MaxConcurrent)
	}
	ctx, cancel := context.WithCancel(ctx)
	return &Blob{ctx: ctx, cancel: cancel, do: do, url: rawURL, size: size, opts: opts, lim: lim}, nil
}

// Size returns the blob's size.
func (b *Blob) Size() int64 { return b.size }

// Close ends every read in progress and makes later ones fail.
func (b *Blob) Close() error {
	b.cancel()
	return nil
}

// IgnoresRange reports whether the server was seen answering a Range
// request with the whole blob.
func (b *Blob) IgnoresRange() bool { return b.noRange.Load() }

// ReadAt implements io.ReaderAt: it reads len(p) bytes at off, or up to
// the end of the blob and returns io.EOF.
func (b *Blob) ReadAt(p []byte, off int64) (int, error) {
	return b.ReadAtContext(b.ctx, p, off)
}

// ReadAtContext is ReadAt with a context for this read only; the
// blob's own context still applies.
func (b *Blob) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read blob %s: negative offset %d", b.opts.Name, off)
	}
	if off >= b.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := len(p)
	var eof error
	if int64(n) > b.size-off {
		n = int(b.size - off)
		eof = io.EOF
	}
	if n == 0 {
		return 0, nil
	}
	if err := b.read(ctx, p[:n], off); err != nil {
		return 0, err
	}
	return n, eof
}

// Range is one span to read: len(Buf) bytes at Off.
type Range struct {
	Off int64
	Buf []byte
}

// ReadRanges fills every range's Buf, merging ranges less than
// Options.MergeGap apart into one request; the merged requests run
// concurrently, within the Limiter. Ranges must lie inside the blob.
func (b *Blob) ReadRanges(ctx context.Context, ranges []Range) error {
	for _, r := range ranges {
		if r.Off < 0 || r.Off+int64(len(r.Buf)) > b.size {
			return fmt.Errorf("read blob %s: range %d+%d outside its %d bytes", b.opts.Name, r.Off, len(r.Buf), b.size)
		}
	}
	spans := mergeRanges(ranges, b.opts.MergeGap)
	errs := make([]error, len(spans))
	var wg sync.WaitGroup
	for i, s := range spans {
		wg.Go(func() {
			buf := make([]byte, s.end-s.off)
			if err := b.read(ctx, buf, s.off); err != nil {
				errs[i] = err
				return
			}
			for _, r := range s.parts {
				copy(r.Buf, buf[r.Off-s.off:])
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// span is one request's bytes [off, end) and the ranges it serves.
type span struct {
	off, end int64
	parts    []Range
}

// mergeRanges sorts ranges by offset and joins those at most gap bytes
// apart (gap < 0: only overlapping or touching ones).
func mergeRanges(ranges []Range, gap int64) []span {
	sorted := make([]Range, 0, len(ranges))
	for _, r := range ranges {
		if len(r.Buf) > 0 {
			sorted = append(sorted, r)
		}
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Off < sorted[j].Off })
	gap = max(gap, 0)
	var spans []span
	for _, r := range sorted {
		end := r.Off + int64(len(r.Buf))
		if n := len(spans); n > 0 && r.Off <= spans[n-1].end+gap {
			s := &spans[n-1]
			s.end = max(s.end, end)
			s.parts = append(s.parts, r)
			continue
		}
		spans = append(spans, span{off: r.Off, end: end, parts: []Range{r}})
	}
	return spans
}

// read fills p with the bytes at off, retrying until MaxWait has been
// spent. p lies inside the blob and is not empty.
func (b *Blob) read(ctx context.Context, p []byte, off int64) error {
	ctx, cancel := mergeCancel(ctx, b.ctx)
	defer cancel()
	start := time.Now()
	backoff := b.opts.Backoff
	what := fmt.Sprintf("read blob %s bytes %d-%d", b.opts.Name, off, off+int64(len(p))-1)
	for attempt := 1; ; attempt++ {
		wait, err := b.attempt(ctx, p, off)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, context.Cause(ctx))
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return fmt.Errorf("%s: %w", what, perm.err)
		}
		if wait == 0 {
			wait = backoff + rand.N(backoff/2+1)
			backoff = min(2*backoff, b.opts.MaxBackoff)
		}
		spent := time.Since(start)
		if spent+wait > b.opts.MaxWait {
			return fmt.Errorf("%s: %w after %d attempts in %s: %w", what, ErrGaveUp, attempt, spent.Round(time.Millisecond), err)
		}
		if b.opts.Logger != nil {
			b.opts.Logger.Warn("retrying blob read", "blob", b.opts.Name, "offset", off, "length", len(p), "attempt", attempt, "wait", wait, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", what, context.Cause(ctx))
		}
	}
}

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(format string, args ...any) error {
	return &permanentError{fmt.Errorf(format, args...)}
}

// attempt sends one request for p's bytes at off. On a retryable
// failure it returns the error and how long the server asked to wait
// (0: the caller's backoff).
func (b *Blob) attempt(ctx context.Context, p []byte, off int64) (time.Duration, error) {
	if err := b.lim.acquire(ctx); err != nil {
		return 0, err
	}
	defer b.lim.release()

	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(b.opts.IdleTimeout, func() {
		cancel(fmt.Errorf("no answer for %s", b.opts.IdleTimeout))
	})
	defer watchdog.Stop()

	target := b.url
	redirected := b.redirected.Load()
	if redirected != nil {
		target = *redirected
	}
	req, err := http.NewRequestWithContext(actx, http.MethodGet, target, nil)
	if err != nil {
		return 0, permanent("new request: %w", err)
	}
	for k, v := range b.opts.Header {
		req.Header[k] = append([]string(nil), v...)
	}
	end := off + int64(len(p)) - 1
	noRange := b.noRange.Load()
	if !noRange {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end))
	}
	resp, err := b.do(req)
	if err != nil {
		if c := context.Cause(actx); c != nil && ctx.Err() == nil {
			return 0, c
		}
		if isCertError(err) {
			return 0, permanent("%w", err)
		}
		return 0, err
	}
	defer resp.Body.Close()
	if resp.Request != nil && resp.Request.URL.String() != target {
		u := resp.Request.URL.String()
		b.redirected.Store(&u)
	}
	body := &idleReader{r: resp.Body, watchdog: watchdog, idle: b.opts.IdleTimeout}
	readErr := func(err error) error {
		if c := context.Cause(actx); c != nil && ctx.Err() == nil {
			return c
		}
		return err
	}

	switch sc := resp.StatusCode; {
	case sc == http.StatusPartialContent:
		if noRange {
			return 0, permanent("%w: 206 to a request without Range", ErrBadResponse)
		}
		cr := resp.Header.Get("Content-Range")
		gotOff, gotEnd, total, err := parseContentRange(cr)
		if err != nil {
			return 0, permanent("%w: %w", ErrBadResponse, err)
		}
		if gotOff != off || gotEnd != end || total != b.size {
			return 0, permanent("%w: Content-Range %q for bytes=%d-%d of %d bytes", ErrBadResponse, cr, off, end, b.size)
		}
		if resp.ContentLength >= 0 && resp.ContentLength != int64(len(p)) {
			return 0, permanent("%w: Content-Length %d for %d bytes", ErrBadResponse, resp.ContentLength, len(p))
		}
		if _, err := io.ReadFull(body, p); err != nil {
			return 0, fmt.Errorf("short body: %w", readErr(err))
		}
		if err := expectEOF(body); err != nil {
			return 0, readErr(err)
		}
		return 0, nil
	case sc == http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != b.size {
			return 0, permanent("%w: 200 with Content-Length %d for a blob of %d bytes", ErrBadResponse, resp.ContentLength, b.size)
		}
		if !noRange {
			b.noRange.Store(true)
			if b.opts.Logger != nil {
				b.opts.Logger.Info("server ignores Range, reading whole bodies", "blob", b.opts.Name)
			}
		}
		if _, err := io.CopyN(io.Discard, body, off); err != nil {
			return 0, fmt.Errorf("short body: %w", readErr(err))
		}
		if _, err := io.ReadFull(body, p); err != nil {
			return 0, fmt.Errorf("short body: %w", readErr(err))
		}
		if resp.ContentLength < 0 {
			// Without a length, the rest of the body proves the size.
			rest, err := io.Copy(io.Discard, body)
			if err != nil {
				return 0, fmt.Errorf("short body: %w", readErr(err))
			}
			if off+int64(len(p))+rest != b.size {
				return 0, permanent("%w: 200 with %d bytes for a blob of %d", ErrBadResponse, off+int64(len(p))+rest, b.size)
			}
		}
		return 0, nil
	case (sc == http.StatusUnauthorized || sc == http.StatusForbidden) && redirected != nil:
		// The signed storage URL expired: ask the registry again. That
		// request starts from the registry's URL, so a second refusal
		// falls through to ErrStatus: the registry is asked only once.
		b.redirected.CompareAndSwap(redirected, nil)
		return time.Nanosecond, fmt.Errorf("%w: %s", errRedirectExpired, resp.Status)
	case sc == http.StatusTooManyRequests:
		return retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("%s", resp.Status)
	case sc >= 500:
		return 0, fmt.Errorf("%s", resp.Status)
	case sc == http.StatusRequestedRangeNotSatisfiable:
		return 0, permanent("%w: %s for bytes=%d-%d of %d bytes", ErrBadResponse, resp.Status, off, end, b.size)
	}
	return 0, permanent("%w: %s", ErrStatus, resp.Status)
}

// expectEOF checks that r has nothing left: a longer body than asked is
// a server answering something else.
func expectEOF(r io.Reader) error {
	var one [1]byte
	n, err := r.Read(one[:])
	if n > 0 {
		return permanent("%w: body longer than its Content-Range", ErrBadResponse)
	}
	if err == io.EOF || err == nil {
		// nil with n == 0 is allowed by io.Reader; the next read ends it.
		if err == nil {
			if n, _ := r.Read(one[:]); n > 0 {
				return permanent("%w: body longer than its Content-Range", ErrBadResponse)
			}
		}
		return nil
	}
	return err
}

// parseContentRange parses "bytes FIRST-LAST/TOTAL" (RFC 9110, 14.4).
func parseContentRange(s string) (first, last, total int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: not bytes", s)
	}
	span, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: no total", s)
	}
	a, z, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: no range", s)
	}
	if first, err = strconv.ParseInt(a, 10, 64); err == nil {
		if last, err = strconv.ParseInt(z, 10, 64); err == nil {
			total, err = strconv.ParseInt(tot, 10, 64)
		}
	}
	if err != nil || first < 0 || last < first || total <= last {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: malformed", s)
	}
	return first, last, total, nil
}

// retryAfter parses a Retry-After header, seconds or an HTTP date
// (RFC 9110, 10.2.3); an unparsable or missing one is 1 s.
func retryAfter(v string) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return max(time.Duration(s)*time.Second, time.Nanosecond)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), time.Nanosecond)
	}
	return time.Second
}

// isCertError reports whether err is a TLS verification failure, which
// no retry fixes.
func isCertError(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}

// idleReader pushes the attempt's watchdog back on every read that
// returns bytes, so a slow but moving body is not cut off.
type idleReader struct {
	r        io.Reader
	watchdog *time.Timer
	idle     time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.watchdog.Reset(r.idle)
	}
	return n, err
}

// mergeCancel returns a context that ends when either a or b does,
// with a's values.
func mergeCancel(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(a)
	stop := context.AfterFunc(b, func() { cancel(context.Cause(b)) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}
