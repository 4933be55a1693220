package integration

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/registrytest"
	"github.com/ocifs/ocifs/internal/tartest"
)

// TestMountFromRegistry pushes an image with skopeo to Debian's
// docker-registry, plain and with TLS and htpasswd, mounts it with
// `ocifs mount docker://…` from an empty cache and checks that the tree
// is the one mounted from the layout, that the layers were fetched
// once (a second mount from the same cache sends no blob request) and
// that inspect agrees with skopeo inspect.
func TestMountFromRegistry(t *testing.T) {
	requireMountable(t)
	skopeo := requireTool(t, "skopeo")
	bin := buildOcifs(t)

	layout := filepath.Join(t.TempDir(), "layout")
	ls := whiteoutLayers()
	big := new(tartest.Layer).Dir("data").File("data/big", tartest.RandomData(t, "big", 6<<20))
	imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "t", Layers: []imagetest.LayerSpec{
		{Layer: everythingLayer(t), Compression: tartest.Gzip},
		{Layer: ls[0], Compression: tartest.Gzip},
		{Layer: ls[1], Compression: tartest.Zstd},
		{Layer: ls[2], Compression: tartest.Gzip},
		{Layer: big, Compression: tartest.Gzip},
	}})
	want := snapshot(t, ocifsMount(t, bin, layout+":t"))

	for _, tc := range []struct {
		name string
		opts registrytest.Options
	}{
		{"plain", registrytest.Options{}},
		{"tls and htpasswd", registrytest.Options{TLS: true, User: "alice", Password: "s3cret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := registrytest.Start(t, tc.opts)
			ref := reg.Push(t, "oci:"+layout+":t", "test/img:t")
			mountRef := ref
			var proxy *registrytest.FaultProxy
			if !reg.TLS {
				// Through a proxy of ours, which counts the bytes.
				proxy = registrytest.NewFaultProxy(t, reg.URL, registrytest.ProxyOptions{})
				mountRef = proxy.Host + "/test/img:t"
			}
			var flags []string
			if reg.TLS {
				flags = append(flags, "--cert-dir", reg.CertDir)
			} else {
				flags = append(flags, "--tls-verify=false")
			}
			if c := reg.Creds(); c != "" {
				flags = append(flags, "--creds", c)
			}
			cache := filepath.Join(t.TempDir(), "cache")
			args := append([]string{"--cache-dir", cache}, flags...)
			compareTrees(t, snapshot(t, ocifsMount(t, bin, "docker://"+mountRef, args...)), want, nil)
			if proxy != nil {
				first := proxy.Bytes()
				size := layoutBlobBytes(t, layout)
				t.Logf("first mount fetched %d bytes of a %d-byte image", first, size)
				if first > size*102/100+64<<10 {
					t.Errorf("the first mount fetched %d bytes of a %d-byte image: more than 1.02x", first, size)
				}
				// A second mount from the same cache fetches manifest
				// and config, no layer byte.
				compareTrees(t, snapshot(t, ocifsMount(t, bin, "docker://"+mountRef, args...)), want, nil)
				if again := proxy.Bytes() - first; again > 64<<10 {
					t.Errorf("a second mount from the same cache fetched %d bytes", again)
				}
			}
			du := string(run(t, bin, "cache", "du", "--cache-dir", cache))
			if !strings.Contains(du, "fetched ranges") {
				t.Errorf("cache du does not list fetched ranges:\n%s", du)
			}

			// inspect matches skopeo inspect's layer digests.
			var got struct{ Layers []struct{ Digest string } }
			decode(t, run(t, bin, append([]string{"inspect", "--json", "docker://" + ref}, flags...)...), &got)
			sargs := []string{"inspect"}
			if reg.TLS {
				sargs = append(sargs, "--cert-dir", reg.CertDir)
			} else {
				sargs = append(sargs, "--tls-verify=false")
			}
			if c := reg.Creds(); c != "" {
				sargs = append(sargs, "--creds", c)
			}
			var sk struct{ Layers []string }
			decode(t, run(t, skopeo, append(sargs, "docker://"+ref)...), &sk)
			if len(sk.Layers) != len(got.Layers) || len(got.Layers) != 5 {
				t.Fatalf("inspect: %d layers, skopeo inspect %d, want 5", len(got.Layers), len(sk.Layers))
			}
			for i := range sk.Layers {
				if got.Layers[i].Digest != sk.Layers[i] {
					t.Errorf("inspect layer %d: %s, skopeo says %s", i, got.Layers[i].Digest, sk.Layers[i])
				}
			}

			if reg.User != "" {
				// A wrong password is one clear line and a non-zero exit.
				cmd := exec.Command(bin, "inspect", "--cert-dir", reg.CertDir, "--creds", reg.User+":wrong", "docker://"+ref)
				out, err := cmd.CombinedOutput()
				lines := bytes.Count(bytes.TrimSpace(out), []byte("\n")) + 1
				if err == nil || lines != 1 || !bytes.Contains(out, []byte(reg.Host)) {
					t.Errorf("inspect with a wrong password: %v, %d lines:\n%s", err, lines, out)
				}
			}
		})
	}
}

// layoutBlobBytes is the size of a layout's blobs.
func layoutBlobBytes(t *testing.T, layout string) int64 {
	t.Helper()
	return duBytes(t, filepath.Join(layout, "blobs"))
}
