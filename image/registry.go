package image

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ocifs/ocifs/internal/blobcache"
	"github.com/ocifs/ocifs/internal/httprange"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// Sentinel errors of registry sources, wrapped by the errors
// OpenRegistry and its Source return.
var (
	// ErrUnauthorized: the registry refused the credentials given, or
	// asked for some and none were given.
	ErrUnauthorized = errors.New("image: authentication required")
	// ErrUntrustedCertificate: the registry's TLS certificate does not
	// verify against the system roots and --cert-dir.
	ErrUntrustedCertificate = errors.New("image: untrusted certificate")
	// ErrUnreachable: no connection to the registry could be made.
	ErrUnreachable = errors.New("image: registry unreachable")
)

// registryDialTimeout bounds connecting to a registry, so that an
// unreachable host fails in seconds rather than the kernel's minutes.
const registryDialTimeout = 10 * time.Second

// registryManifestTypes are the manifest and index media types asked for
// (the Accept header) and read through the manifest endpoint
// (distribution-spec, "Pulling manifests").
var registryManifestTypes = []string{
	ocispec.MediaTypeImageManifest,
	ocispec.MediaTypeImageIndex,
	MediaTypeDockerManifest,
	MediaTypeDockerManifestList,
}

// RegistryOptions configure OpenRegistry. The zero value pulls
// anonymously, or with the credentials of the default auth files, over
// HTTPS verified against the system's roots.
type RegistryOptions struct {
	// Creds is "USER[:PASS]" (skopeo's --creds); it replaces the auth
	// files. A missing password is an empty one.
	Creds string
	// AuthFile is a containers-auth.json(5) or Docker config.json file
	// (credential helpers included). Empty reads, in this order,
	// $REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json and
	// ~/.docker/config.json: the first holding credentials for the
	// registry wins.
	AuthFile string
	// CertDir holds *.crt files to trust as extra roots and a
	// client.cert / client.key pair (or any NAME.cert / NAME.key) to
	// present, as containers-certs.d(5) lays them out. Empty uses
	// /etc/containers/certs.d/HOST[:PORT] and /etc/docker/certs.d/HOST[:PORT]
	// if they exist.
	CertDir string
	// SkipTLSVerify is skopeo's --tls-verify=false: the certificate is
	// not verified, and a registry that speaks plain HTTP is read over
	// HTTP.
	SkipTLSVerify bool
	// ResponseTimeout bounds the wait for a registry's answer to a
	// manifest or config request; zero is 15 s. A host that accepts
	// connections but never answers fails after it, not retried.
	ResponseTimeout time.Duration
	// Range tunes blob reads (retries, waits, concurrency per host).
	Range httprange.Options
	// Logger gets retries and fallbacks; nil logs nothing.
	Logger *slog.Logger
	// Cache, if set, keeps what is read of the registry's blobs on
	// disk (blobcache), so that no byte is fetched twice; nil fetches
	// every read.
	Cache *blobcache.Cache
}

// Registry is a Source reading one repository of a registry through the
// OCI distribution spec.
type Registry struct {
	ref     registry.Reference // Registry and Repository only
	repo    *remote.Repository
	blobDo  httprange.Doer
	blobURL string // scheme://HOST/v2/REPO/blobs/
	opts    RegistryOptions
	ctx     context.Context
	cancel  context.CancelFunc
}

var _ Source = (*Registry)(nil)

// OpenRegistry returns the Source of ref's repository. ref.Path is
// HOST[:PORT]/REPO ("docker.io/library/busybox": docker.io is read at
// registry-1.docker.io). Nothing is sent yet, unless SkipTLSVerify asks
// to find out whether the registry speaks HTTPS.
func OpenRegistry(ctx context.Context, ref Reference, opts RegistryOptions) (Source, error) {
	host, repoName, ok := strings.Cut(ref.Path, "/")
	if !ok || host == "" || repoName == "" {
		return nil, fmt.Errorf("open registry %q: %w: want HOST[:PORT]/REPOSITORY", ref.Path, ErrInvalid)
	}
	rref := registry.Reference{Registry: host, Repository: repoName}
	if err := rref.Validate(); err != nil {
		return nil, fmt.Errorf("open registry %q: %w: %w", ref.Path, ErrInvalid, err)
	}
	tlsConf, err := registryTLSConfig(rref.Host(), opts)
	if err != nil {
		return nil, fmt.Errorf("open registry %q: %w", ref.Path, err)
	}
	dialer := &net.Dialer{Timeout: registryDialTimeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: registryDialTimeout,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
		// Blobs are compressed already, and a transparently gunzipped
		// body would not match the ranges asked for.
		DisableCompression: true,
	}
	cred, err := registryCredential(rref, opts)
	if err != nil {
		return nil, fmt.Errorf("open registry %q: %w", ref.Path, err)
	}
	cache := auth.NewCache()
	header := http.Header{"User-Agent": {"ocifs"}}
	// Manifests and configs are small: oras-go's retrying transport
	// (5xx, 429, resets) suffices, but a host that does not answer is
	// not dialled again and again.
	metaBase := transport.Clone()
	metaBase.ResponseHeaderTimeout = cmp.Or(opts.ResponseTimeout, 15*time.Second)
	metaTransport := retry.NewTransport(metaBase)
	metaTransport.Policy = func() retry.Policy { return registryRetryPolicy }
	metaClient := &auth.Client{
		Client:     &http.Client{Transport: metaTransport, Timeout: 2 * time.Minute},
		Header:     header,
		Credential: cred,
		Cache:      cache,
	}
	// Blob reads retry in httprange, within its bounded wait.
	blobClient := &auth.Client{
		Client:     &http.Client{Transport: transport},
		Header:     header,
		Credential: cred,
		Cache:      cache,
	}
	repo := &remote.Repository{
		Client:             metaClient,
		Reference:          rref,
		ManifestMediaTypes: registryManifestTypes,
		MaxMetadataBytes:   maxJSONBlob,
	}
	if opts.SkipTLSVerify {
		repo.PlainHTTP = speaksPlainHTTP(ctx, &http.Client{Transport: metaBase, Timeout: registryDialTimeout}, rref.Host())
		if repo.PlainHTTP && opts.Logger != nil {
			opts.Logger.Info("registry speaks plain HTTP", "host", rref.Host())
		}
	}
	scheme := "https"
	if repo.PlainHTTP {
		scheme = "http"
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &Registry{
		ref:     rref,
		repo:    repo,
		blobURL: scheme + "://" + rref.Host() + "/v2/" + rref.Repository + "/blobs/",
		opts:    opts,
		ctx:     sctx,
		cancel:  cancel,
	}
	r.blobDo = func(req *http.Request) (*http.Response, error) {
		ctx := auth.AppendRepositoryScope(req.Context(), rref, auth.ActionPull)
		return blobClient.Do(req.WithContext(ctx))
	}
	return r, nil
}

// registryRetryPolicy retries metadata requests like oras-go's default,
// but not a dial or an answer that timed out: that host is unreachable
// or hanging, and retrying would multiply the wait.
var registryRetryPolicy = &retry.GenericPolicy{
	Retryable: func(resp *http.Response, err error) (bool, error) {
		var op *net.OpError
		var ne net.Error
		if (errors.As(err, &op) && op.Op == "dial") || (errors.As(err, &ne) && ne.Timeout()) {
			return false, err
		}
		return retry.DefaultPredicate(resp, err)
	},
	Backoff:  retry.DefaultBackoff,
	MinWait:  200 * time.Millisecond,
	MaxWait:  3 * time.Second,
	MaxRetry: 4,
}

// speaksPlainHTTP reports whether host fails over HTTPS but answers
// over HTTP, as containers/image falls back for insecure registries.
func speaksPlainHTTP(ctx context.Context, client *http.Client, host string) bool {
	ping := func(scheme string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	err := ping("https")
	if err == nil {
		return false
	}
	if isPlainHTTPAnswer(err) {
		return true
	}
	return ping("http") == nil
}

// isPlainHTTPAnswer reports whether err is a TLS handshake answered in
// plain HTTP. net/http turns the tls.RecordHeaderError into a plain
// error string.
func isPlainHTTPAnswer(err error) bool {
	var rh tls.RecordHeaderError
	return errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// registryTLSConfig builds the TLS configuration for host from
// opts.CertDir (containers-certs.d(5)): every *.crt is an extra root,
// every NAME.cert with its NAME.key a client certificate.
func registryTLSConfig(host string, opts RegistryOptions) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: opts.SkipTLSVerify} //nolint:gosec // --tls-verify=false asks for it
	dirs := []string{opts.CertDir}
	if opts.CertDir == "" {
		dirs = []string{filepath.Join("/etc/containers/certs.d", host), filepath.Join("/etc/docker/certs.d", host)}
	}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && opts.CertDir == "" {
				continue
			}
			return nil, fmt.Errorf("read cert dir: %w", err)
		}
		for _, e := range entries {
			path := filepath.Join(dir, e.Name())
			switch {
			case strings.HasSuffix(e.Name(), ".crt"):
				pemData, err := os.ReadFile(path)
				if err != nil {
					return nil, fmt.Errorf("read CA certificate: %w", err)
				}
				if conf.RootCAs == nil {
					if conf.RootCAs, err = x509.SystemCertPool(); err != nil {
						conf.RootCAs = x509.NewCertPool()
					}
				}
				if !conf.RootCAs.AppendCertsFromPEM(pemData) {
					return nil, fmt.Errorf("read CA certificate %q: %w: no PEM certificate", path, ErrInvalid)
				}
			case strings.HasSuffix(e.Name(), ".cert"):
				keyPath := strings.TrimSuffix(path, ".cert") + ".key"
				cert, err := tls.LoadX509KeyPair(path, keyPath)
				if err != nil {
					return nil, fmt.Errorf("read client certificate %q: %w", path, err)
				}
				conf.Certificates = append(conf.Certificates, cert)
			}
		}
	}
	return conf, nil
}

// registryCredential returns the credentials for rref's registry: the
// --creds pair, or the auth files' (containers-auth.json(5)).
func registryCredential(rref registry.Reference, opts RegistryOptions) (auth.CredentialFunc, error) {
	if opts.Creds != "" {
		user, pass, _ := strings.Cut(opts.Creds, ":")
		if user == "" {
			return nil, fmt.Errorf("parse credentials: %w: empty user name in USER[:PASS]", ErrInvalid)
		}
		c := auth.Credential{Username: user, Password: pass}
		return func(_ context.Context, hostport string) (auth.Credential, error) {
			if hostport == rref.Host() || hostport == rref.Registry {
				return c, nil
			}
			return auth.EmptyCredential, nil
		}, nil
	}
	var paths []string
	if opts.AuthFile != "" {
		if _, err := os.Stat(opts.AuthFile); err != nil {
			return nil, fmt.Errorf("read auth file: %w", err)
		}
		paths = []string{opts.AuthFile}
	} else {
		if p := os.Getenv("REGISTRY_AUTH_FILE"); p != "" {
			paths = append(paths, p)
		}
		if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
			paths = append(paths, filepath.Join(d, "containers", "auth.json"))
		}
		if home, err := os.UserHomeDir(); err == nil {
			paths = append(paths, filepath.Join(home, ".docker", "config.json"))
		}
	}
	var stores []credentials.Store
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil && opts.AuthFile == "" {
			continue
		}
		s, err := credentials.NewStore(p, credentials.StoreOptions{})
		if err != nil {
			return nil, fmt.Errorf("read auth file %q: %w", p, err)
		}
		stores = append(stores, s)
	}
	if len(stores) == 0 {
		return nil, nil // anonymous
	}
	return credentials.Credential(credentials.NewStoreWithFallbacks(stores[0], stores[1:]...)), nil
}

// Resolve returns the descriptor of the manifest or index ref's tag or
// digest names; with neither, the tag "latest", as skopeo reads it.
func (r *Registry) Resolve(ctx context.Context, ref Reference) ([]ocispec.Descriptor, error) {
	name, what := ref.Tag, "tag"
	switch {
	case ref.Digest != "":
		if err := ref.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("resolve %s: %w: %w", r.name(ref), ErrInvalid, err)
		}
		name, what = ref.Digest.String(), "manifest"
	case name == "":
		name = "latest"
	}
	desc, err := r.repo.Resolve(ctx, name)
	if err != nil {
		if errors.Is(err, errdef.ErrNotFound) || statusOf(err) == http.StatusNotFound {
			return nil, fmt.Errorf("resolve %s: %w: no %s %q in %s", r.name(ref), ErrNotFound, what, name, r.repoName())
		}
		return nil, fmt.Errorf("resolve %s: %w", r.name(ref), r.explain(err))
	}
	if !isManifestType(desc.MediaType) {
		return nil, fmt.Errorf("resolve %s: %w: %q", r.name(ref), ErrUnsupportedMediaType, desc.MediaType)
	}
	return []ocispec.Descriptor{desc}, nil
}

// ReadBlob reads a manifest or index (through the manifest endpoint) or
// a config (through the blob endpoint) whole, refusing more than
// maxJSONBlob bytes, and checks its size and digest (descriptor.md,
// "Digests").
func (r *Registry) ReadBlob(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("read blob %q: %w: %w", desc.Digest, ErrUnsupportedDigest, err)
	}
	if desc.Size < 0 || desc.Size > maxJSONBlob {
		return nil, fmt.Errorf("read blob %q: %w: %d bytes is outside the 0-%d allowed", desc.Digest, ErrInvalid, desc.Size, maxJSONBlob)
	}
	rc, err := r.repo.Fetch(ctx, desc)
	if err != nil {
		// oras-go checks Content-Length against the size before any
		// byte is read, and says so only in its text.
		if strings.Contains(err.Error(), "mismatch Content-Length") {
			return nil, fmt.Errorf("read blob %q: %w: %s sent a different size than %d", desc.Digest, ErrBlobSize, r.ref.Registry, desc.Size)
		}
		if errors.Is(err, errdef.ErrNotFound) || statusOf(err) == http.StatusNotFound {
			return nil, fmt.Errorf("read blob %q: %w: not in %s", desc.Digest, ErrNotFound, r.repoName())
		}
		return nil, fmt.Errorf("read blob %q: %w", desc.Digest, r.explain(err))
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, desc.Size+1))
	if err != nil {
		return nil, fmt.Errorf("read blob %q: %w", desc.Digest, r.explain(err))
	}
	if int64(len(data)) != desc.Size {
		return nil, fmt.Errorf("read blob %q: %w: %s sent %d bytes, want %d", desc.Digest, ErrBlobSize, r.ref.Registry, len(data), desc.Size)
	}
	if got := desc.Digest.Algorithm().FromBytes(data); got != desc.Digest {
		return nil, fmt.Errorf("read blob %q: %w: %s sent bytes hashing to %s", desc.Digest, ErrDigestMismatch, r.ref.Registry, got)
	}
	return data, nil
}

// OpenBlob opens a layer for random access with Range requests
// (internal/httprange). Nothing is sent until the first read; reads
// end when the blob or the Registry is closed.
func (r *Registry) OpenBlob(ctx context.Context, desc ocispec.Descriptor) (Blob, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("open blob %q: %w: %w", desc.Digest, ErrUnsupportedDigest, err)
	}
	opts := r.opts.Range
	if opts.Name == "" {
		opts.Name = r.repoName() + "@" + desc.Digest.String()
	}
	if opts.Logger == nil {
		opts.Logger = r.opts.Logger
	}
	b, err := httprange.New(r.ctx, r.blobDo, r.blobURL+desc.Digest.String(), desc.Size, opts)
	if err != nil {
		return nil, fmt.Errorf("open blob %q: %w", desc.Digest, err)
	}
	if r.opts.Cache != nil {
		return r.opts.Cache.Wrap(desc.Digest, b), nil
	}
	return b, nil
}

// Close ends every blob read in progress.
func (r *Registry) Close() error {
	r.cancel()
	return nil
}

// repoName is HOST/REPO.
func (r *Registry) repoName() string { return r.ref.Registry + "/" + r.ref.Repository }

// name is the reference as the user wrote it, quoted.
func (r *Registry) name(ref Reference) string {
	ref.Path = r.repoName()
	return fmt.Sprintf("%q", ref.String())
}

// explain turns a client error into one line wrapping the sentinel that
// says what to do about it.
func (r *Registry) explain(err error) error {
	host := r.ref.Registry
	// net/http's timeouts also match context.DeadlineExceeded: only
	// a cancel is passed on as it is.
	if errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, auth.ErrBasicCredentialNotFound) {
		return fmt.Errorf("%w: %s asks for credentials and none were found (give --creds or --authfile)", ErrUnauthorized, host)
	}
	switch statusOf(err) {
	case http.StatusUnauthorized:
		return fmt.Errorf("%w: %s answered 401 Unauthorized (check --creds or --authfile)", ErrUnauthorized, host)
	case http.StatusForbidden:
		return fmt.Errorf("%w: %s answered 403 Forbidden (check --creds or --authfile)", ErrUnauthorized, host)
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) {
		return fmt.Errorf("%w: %s: %w (trust it with --cert-dir DIR holding its ca.crt, or skip the check with --tls-verify=false)", ErrUntrustedCertificate, host, innermost(err))
	}
	if isPlainHTTPAnswer(err) {
		return fmt.Errorf("%w: %s speaks plain HTTP, not HTTPS (use --tls-verify=false)", ErrUnreachable, host)
	}
	var op *net.OpError
	var dns *net.DNSError
	if errors.As(err, &op) || errors.As(err, &dns) {
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, host, innermost(err))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %s: no answer: %w", ErrUnreachable, host, innermost(err))
	}
	return err
}

// innermost drops the *url.Error around a transport error: its text
// repeats the method and URL the caller already names.
func innermost(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// statusOf returns the HTTP status of a registry error response, or 0.
func statusOf(err error) int {
	var er *errcode.ErrorResponse
	if errors.As(err, &er) {
		return er.StatusCode
	}
	return 0
}

// isManifestType reports whether t is a manifest or index media type
// this package reads.
func isManifestType(t string) bool {
	for _, m := range registryManifestTypes {
		if t == m {
			return true
		}
	}
	return false
}
