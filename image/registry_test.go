package image

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/httprange"
	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/registrytest"
	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pushedImage is an image written as a layout and pushed to a registry.
type pushedImage struct {
	layout   string
	manifest ocispec.Descriptor
	ref      Reference // docker transport, tag "v1"
}

// seededBytes returns n bytes of noise seeded from t.Name(), which gzip
// cannot shrink: layer spans then lie far apart in the blob.
func seededBytes(t *testing.T, n int) []byte {
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	r := rand.New(rand.NewPCG(h.Sum64(), 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// pushImage writes a two-layer image (plain and gzip) into a layout
// and pushes it with skopeo to reg as test/img:v1.
func pushImage(t *testing.T, reg *registrytest.Registry) pushedImage {
	t.Helper()
	dir := t.TempDir()
	l1 := new(tartest.Layer).Dir("data").File("data/big", seededBytes(t, 600<<10))
	l2 := new(tartest.Layer).File("etc/os-release", []byte("ID=test\n")).File("data/more", seededBytes(t, 300<<10))
	descs := imagetest.WriteLayout(t, dir, imagetest.Image{Tag: "v1", Layers: []imagetest.LayerSpec{
		// Both gzip: skopeo would compress a plain layer on the way.
		{Layer: l1, Compression: tartest.Gzip},
		{Layer: l2, Compression: tartest.Gzip},
	}})
	pushed := reg.Push(t, "oci:"+dir+":v1", "test/img:v1")
	path := strings.TrimSuffix(pushed, ":v1")
	return pushedImage{layout: dir, manifest: descs[0], ref: Reference{Transport: TransportRegistry, Path: path, Tag: "v1"}}
}

func readLayoutBlob(t *testing.T, dir string, d digest.Digest) []byte {
	t.Helper()
	data, err := os.ReadFile(imagetest.BlobPath(dir, d))
	if err != nil {
		t.Fatalf("read layout blob: %v", err)
	}
	return data
}

// noAuthFiles points the default auth file chain at nothing.
func noAuthFiles(t *testing.T) {
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	t.Setenv("HOME", t.TempDir())
}

// writeAuthFile writes a containers-auth.json(5) file for host.
func writeAuthFile(t *testing.T, host, user, pass string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth.json")
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	data := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, auth)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRegistrySource(t *testing.T) {
	tests := []struct {
		name string
		reg  registrytest.Options
		// opts returns the options to open the registry with.
		opts func(t *testing.T, reg *registrytest.Registry) RegistryOptions
	}{
		{
			name: "plain HTTP, anonymous",
			opts: func(*testing.T, *registrytest.Registry) RegistryOptions {
				return RegistryOptions{SkipTLSVerify: true}
			},
		},
		{
			name: "TLS and htpasswd, creds",
			reg:  registrytest.Options{TLS: true, User: "alice", Password: "s3cret:with:colons"},
			opts: func(_ *testing.T, reg *registrytest.Registry) RegistryOptions {
				return RegistryOptions{CertDir: reg.CertDir, Creds: reg.Creds()}
			},
		},
		{
			name: "TLS and htpasswd, authfile",
			reg:  registrytest.Options{TLS: true, User: "bob", Password: "pw"},
			opts: func(t *testing.T, reg *registrytest.Registry) RegistryOptions {
				return RegistryOptions{CertDir: reg.CertDir, AuthFile: writeAuthFile(t, reg.Host, reg.User, reg.Password)}
			},
		},
		{
			name: "TLS and htpasswd, REGISTRY_AUTH_FILE",
			reg:  registrytest.Options{TLS: true, User: "carol", Password: "pw"},
			opts: func(t *testing.T, reg *registrytest.Registry) RegistryOptions {
				t.Setenv("REGISTRY_AUTH_FILE", writeAuthFile(t, reg.Host, reg.User, reg.Password))
				return RegistryOptions{CertDir: reg.CertDir}
			},
		},
		{
			name: "TLS with a client certificate",
			reg:  registrytest.Options{TLS: true, ClientCert: true},
			opts: func(_ *testing.T, reg *registrytest.Registry) RegistryOptions {
				return RegistryOptions{CertDir: reg.CertDir}
			},
		},
		{
			name: "TLS unverified",
			reg:  registrytest.Options{TLS: true},
			opts: func(*testing.T, *registrytest.Registry) RegistryOptions {
				return RegistryOptions{SkipTLSVerify: true}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			noAuthFiles(t)
			reg := registrytest.Start(t, tc.reg)
			img := pushImage(t, reg)
			ctx := context.Background()
			src, err := OpenRegistry(ctx, img.ref, tc.opts(t, reg))
			if err != nil {
				t.Fatalf("OpenRegistry: %v", err)
			}
			defer src.Close()

			descs, err := src.Resolve(ctx, img.ref)
			if err != nil {
				t.Fatalf("Resolve(%v): %v", img.ref, err)
			}
			// skopeo may re-encode the manifest on the way: the
			// registry's own bytes are what skopeo inspect --raw reads.
			wantRaw := skopeoInspectRaw(t, reg, img.ref)
			wantDigest := digest.FromBytes(wantRaw)
			if len(descs) != 1 || descs[0].Digest != wantDigest || descs[0].Size != int64(len(wantRaw)) || descs[0].MediaType != ocispec.MediaTypeImageManifest {
				t.Fatalf("Resolve(%v) = %+v, want the manifest skopeo reads, %s", img.ref, descs, wantDigest)
			}
			byDigest := Reference{Transport: TransportRegistry, Path: img.ref.Path, Digest: wantDigest}
			if d, err := src.Resolve(ctx, byDigest); err != nil || len(d) != 1 || d[0].Digest != wantDigest {
				t.Errorf("Resolve(%v) = %+v, %v; want the manifest", byDigest, d, err)
			}

			raw, err := src.ReadBlob(ctx, descs[0])
			if err != nil {
				t.Fatalf("ReadBlob(manifest): %v", err)
			}
			if !bytes.Equal(raw, wantRaw) {
				t.Errorf("ReadBlob(manifest) differs from skopeo inspect --raw")
			}
			var m ocispec.Manifest
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("decode manifest: %v", err)
			}
			// Config and layers are the layout's blobs, unchanged.
			cfg, err := src.ReadBlob(ctx, m.Config)
			if err != nil {
				t.Fatalf("ReadBlob(config): %v", err)
			}
			if !bytes.Equal(cfg, readLayoutBlob(t, img.layout, m.Config.Digest)) {
				t.Errorf("ReadBlob(config) differs from the layout's")
			}

			for i, l := range m.Layers {
				want := readLayoutBlob(t, img.layout, l.Digest)
				b, err := src.OpenBlob(ctx, l)
				if err != nil {
					t.Fatalf("OpenBlob(layer %d): %v", i, err)
				}
				if b.Size() != int64(len(want)) {
					t.Errorf("layer %d Size() = %d, want %d", i, b.Size(), len(want))
				}
				n := int64(len(want))
				for _, s := range [][2]int64{{0, 512}, {n / 3, 70000}, {n - 1000, 1000}, {0, n}} {
					buf := make([]byte, s[1])
					if _, err := b.ReadAt(buf, s[0]); err != nil {
						t.Errorf("layer %d ReadAt(%d, %d): %v", i, s[0], s[1], err)
					} else if !bytes.Equal(buf, want[s[0]:s[0]+s[1]]) {
						t.Errorf("layer %d ReadAt(%d, %d): wrong bytes", i, s[0], s[1])
					}
				}
				b.Close()
			}
		})
	}
}

// skopeoInspectRaw returns what skopeo inspect --raw reads for ref.
func skopeoInspectRaw(t *testing.T, reg *registrytest.Registry, ref Reference) []byte {
	t.Helper()
	args := []string{"inspect", "--raw"}
	if reg.TLS {
		args = append(args, "--cert-dir", reg.CertDir)
	} else {
		args = append(args, "--tls-verify=false")
	}
	if c := reg.Creds(); c != "" {
		args = append(args, "--creds", c)
	}
	out, err := exec.Command("skopeo", append(args, ref.String())...).Output()
	if err != nil {
		t.Fatalf("skopeo %v: %v", args, err)
	}
	return out
}

func TestRegistryErrors(t *testing.T) {
	noAuthFiles(t)
	reg := registrytest.Start(t, registrytest.Options{TLS: true, User: "alice", Password: "right"})
	img := pushImage(t, reg)
	plain := registrytest.Start(t, registrytest.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedHost := ln.Addr().String()
	ln.Close()
	hanging := registrytest.NewFaultProxy(t, plain.URL, registrytest.ProxyOptions{})
	hanging.Down(registrytest.Hang)

	tests := []struct {
		name     string
		ref      Reference
		opts     RegistryOptions
		wantErr  error
		wantText []string
		within   time.Duration // zero: 15 s
	}{
		{
			name:     "wrong password",
			ref:      img.ref,
			opts:     RegistryOptions{CertDir: reg.CertDir, Creds: "alice:wrong"},
			wantErr:  ErrUnauthorized,
			wantText: []string{"authentication required", reg.Host, "401"},
		},
		{
			name:     "no credentials",
			ref:      img.ref,
			opts:     RegistryOptions{CertDir: reg.CertDir},
			wantErr:  ErrUnauthorized,
			wantText: []string{"authentication required", reg.Host},
		},
		{
			name:     "wrong password in the auth file",
			ref:      img.ref,
			opts:     RegistryOptions{CertDir: reg.CertDir, AuthFile: writeAuthFile(t, reg.Host, "alice", "nope")},
			wantErr:  ErrUnauthorized,
			wantText: []string{"authentication required", reg.Host},
		},
		{
			name:     "unknown tag",
			ref:      Reference{Transport: TransportRegistry, Path: img.ref.Path, Tag: "nope"},
			opts:     RegistryOptions{CertDir: reg.CertDir, Creds: reg.Creds()},
			wantErr:  ErrNotFound,
			wantText: []string{`no tag "nope"`, img.ref.Path},
		},
		{
			name:     "unknown repository",
			ref:      Reference{Transport: TransportRegistry, Path: reg.Host + "/no/such", Tag: "v1"},
			opts:     RegistryOptions{CertDir: reg.CertDir, Creds: reg.Creds()},
			wantErr:  ErrNotFound,
			wantText: []string{`no tag "v1"`},
		},
		{
			name:     "untrusted certificate",
			ref:      img.ref,
			opts:     RegistryOptions{Creds: reg.Creds()},
			wantErr:  ErrUntrustedCertificate,
			wantText: []string{reg.Host, "--cert-dir", "--tls-verify=false"},
		},
		{
			name:     "unreachable host",
			ref:      Reference{Transport: TransportRegistry, Path: closedHost + "/test/img", Tag: "v1"},
			wantErr:  ErrUnreachable,
			wantText: []string{closedHost, "connection refused"},
		},
		{
			name:     "host that never answers",
			ref:      Reference{Transport: TransportRegistry, Path: hanging.Host + "/test/img", Tag: "v1"},
			opts:     RegistryOptions{SkipTLSVerify: true, ResponseTimeout: time.Second},
			wantErr:  ErrUnreachable,
			wantText: []string{hanging.Host, "no answer"},
			within:   3 * time.Second, // one timeout, not one per retry
		},
		{
			name:     "plain HTTP registry, TLS verified",
			ref:      Reference{Transport: TransportRegistry, Path: plain.Host + "/test/img", Tag: "v1"},
			wantErr:  ErrUnreachable,
			wantText: []string{plain.Host, "plain HTTP", "--tls-verify=false"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			start := time.Now()
			src, err := OpenRegistry(ctx, tc.ref, tc.opts)
			if err == nil {
				defer src.Close()
				_, err = src.Resolve(ctx, tc.ref)
			}
			if took, within := time.Since(start), cmp.Or(tc.within, 15*time.Second); took > within {
				t.Errorf("error after %s, want within %s", took, within)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Resolve(%v) = %v, want %v", tc.ref, err, tc.wantErr)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q is more than one line", msg)
			}
			for _, w := range tc.wantText {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
		})
	}
}

func TestRegistryReadBlobChecks(t *testing.T) {
	noAuthFiles(t)
	reg := registrytest.Start(t, registrytest.Options{})
	img := pushImage(t, reg)
	ctx := context.Background()
	src, err := OpenRegistry(ctx, img.ref, RegistryOptions{SkipTLSVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	m := imagetest.ReadManifest(t, img.layout, img.manifest)
	wrongSize := m.Config
	wrongSize.Size--
	// The config of another image: the registry has no such blob.
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("missing"), Size: 7}
	tooBig := m.Config
	tooBig.Size = 17 << 20
	tests := []struct {
		name    string
		desc    ocispec.Descriptor
		wantErr error
	}{
		{"size one short", wrongSize, ErrBlobSize},
		{"not in the registry", missing, ErrNotFound},
		{"larger than allowed", tooBig, ErrInvalid},
		{"bad digest", ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: "sha256:../../etc", Size: 1}, ErrUnsupportedDigest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := src.ReadBlob(ctx, tc.desc); !errors.Is(err, tc.wantErr) {
				t.Errorf("ReadBlob(%+v) = %v, want %v", tc.desc, err, tc.wantErr)
			}
		})
	}

	// A proxy that changes one byte of every body, headers intact.
	proxy := registrytest.NewFaultProxy(t, reg.URL, registrytest.ProxyOptions{})
	proxy.SetLie(registrytest.LieCorrupt)
	ref := img.ref
	ref.Path = proxy.Host + strings.TrimPrefix(ref.Path, reg.Host)
	bad, err := OpenRegistry(ctx, ref, RegistryOptions{SkipTLSVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.ReadBlob(ctx, m.Config); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("ReadBlob(config) through a corrupting proxy = %v, want ErrDigestMismatch", err)
	}
}

// TestRegistryBlobThroughFaults reads layers through a fault proxy in
// front of a real registry: right bytes despite the faults, and only
// the spans asked for are transferred.
func TestRegistryBlobThroughFaults(t *testing.T) {
	noAuthFiles(t)
	reg := registrytest.Start(t, registrytest.Options{})
	img := pushImage(t, reg)
	proxy := registrytest.NewFaultProxy(t, reg.URL, registrytest.ProxyOptions{})
	ref := img.ref
	ref.Path = proxy.Host + strings.TrimPrefix(ref.Path, reg.Host)
	ctx := context.Background()
	src, err := OpenRegistry(ctx, ref, RegistryOptions{SkipTLSVerify: true, Range: httprange.Options{
		MaxWait: 5 * time.Second, Backoff: 10 * time.Millisecond, IdleTimeout: time.Second,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	m := imagetest.ReadManifest(t, img.layout, img.manifest)
	layer := m.Layers[0]
	want := readLayoutBlob(t, img.layout, layer.Digest)
	b, err := src.OpenBlob(ctx, layer)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	read := func(off, n int64) {
		t.Helper()
		buf := make([]byte, n)
		if _, err := b.ReadAt(buf, off); err != nil {
			t.Fatalf("ReadAt(%d, %d): %v", off, n, err)
		}
		if !bytes.Equal(buf, want[off:off+n]) {
			t.Fatalf("ReadAt(%d, %d): wrong bytes", off, n)
		}
	}
	proxy.Reset()
	read(100000, 4096)
	if got := proxy.Bytes(); got != 4096 {
		t.Errorf("one 4 KiB read transferred %d bytes, want 4096", got)
	}
	proxy.Fail(2)
	read(200000, 4096)
	proxy.Drop(1, 1000)
	read(300000, 8192)
	proxy.IgnoreRange(true)
	// A 200 answer is read up to the span's end, then dropped. (The
	// proxy's byte count may still be moving when the read returns,
	// so the bytes are checked, not counted.)
	read(50000, 100)
	if !b.(*httprange.Blob).IgnoresRange() {
		t.Errorf("the blob did not notice that the server ignores Range")
	}
	if proxy.MultiRangeRequests() != 0 {
		t.Errorf("multi-range requests sent")
	}
}
