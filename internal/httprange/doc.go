// Package httprange reads one blob over HTTP as an io.ReaderAt, with
// single-range GET requests (RFC 9110, section 14: "Range",
// "Content-Range").
//
// It knows nothing of registries: the caller gives it a function that
// sends requests (so a registry client can sign them) and the blob's
// URL and size. What it owns:
//
//   - Checking every answer: a 206 must carry a Content-Range naming
//     exactly the bytes asked for and the blob's size, and a body of
//     exactly that length. Anything else is retried or an error, never
//     returned as data.
//   - Servers that ignore Range and answer 200 with the whole body: the
//     prefix is discarded and the span read, and the blob remembers it,
//     so later reads do not send Range at all. It never sends a
//     multi-range request.
//   - Redirects: registries send blob GETs to storage with a 307 to a
//     signed URL. The last URL is kept and reused; a 401 or 403 from it
//     sends the next attempt back to the registry for a fresh one.
//   - Retries with backoff on 5xx, dropped connections, short bodies
//     and timeouts; 429 waits for Retry-After. A read gives up after a
//     bounded total wait (Options.MaxWait) with an error that says why.
//   - A bound on concurrent requests per host (a Limiter shared by
//     every Blob of that host), and a context honoured at every wait.
//   - ReadRanges, which merges near ranges into one request.
//
// # What it never does
//
// It never hashes or caches what it reads: checking content against a
// digest is the caller's job, as is keeping bytes on disk.
package httprange
