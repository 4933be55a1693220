package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/ocifs/ocifs/internal/testenv"
)

// probeSource is the program the bundle tests run in a container. It
// reports, as one JSON line, what the container sees: a file of the
// image, its environment, ids and cwd; given "write PATH" it also
// writes PATH and reads it back.
const probeSource = `package main

import (
	"encoding/json"
	"os"
)

func main() {
	var r struct {
		File     string   ` + "`json:\"file\"`" + `
		Env      []string ` + "`json:\"env\"`" + `
		UID      int      ` + "`json:\"uid\"`" + `
		GID      int      ` + "`json:\"gid\"`" + `
		Groups   []int    ` + "`json:\"groups\"`" + `
		Cwd      string   ` + "`json:\"cwd\"`" + `
		Wrote    string   ` + "`json:\"wrote\"`" + `
		WriteErr string   ` + "`json:\"writeErr\"`" + `
		Err      string   ` + "`json:\"err\"`" + `
	}
	b, err := os.ReadFile("/etc/motd")
	if err != nil {
		r.Err = err.Error()
	}
	r.File = string(b)
	r.Env = os.Environ()
	r.UID, r.GID = os.Getuid(), os.Getgid()
	r.Groups, _ = os.Getgroups()
	r.Cwd, _ = os.Getwd()
	if len(os.Args) == 3 && os.Args[1] == "write" {
		if err := os.WriteFile(os.Args[2], []byte("written by the container\n"), 0o644); err != nil {
			r.WriteErr = err.Error()
		} else if b, err := os.ReadFile(os.Args[2]); err != nil {
			r.WriteErr = err.Error()
		} else {
			r.Wrote = string(b)
		}
	}
	json.NewEncoder(os.Stdout).Encode(r)
}
`

// probeReport is what the probe prints.
type probeReport struct {
	File     string   `json:"file"`
	Env      []string `json:"env"`
	UID      int      `json:"uid"`
	GID      int      `json:"gid"`
	Groups   []int    `json:"groups"`
	Cwd      string   `json:"cwd"`
	Wrote    string   `json:"wrote"`
	WriteErr string   `json:"writeErr"`
	Err      string   `json:"err"`
}

const (
	probeMotd = "hello from the image\n"
	probeFile = "/home/alice/out" // where the probe writes
)

// buildProbe builds probeSource as a static binary.
func buildProbe(t *testing.T) []byte {
	t.Helper()
	goBin := requireTool(t, "go")
	src := t.TempDir()
	for name, data := range map[string]string{
		"go.mod":  "module probe\n\ngo 1.26\n",
		"main.go": probeSource,
	} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatalf("write probe source: %v", err)
		}
	}
	bin := filepath.Join(src, "probe")
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = src
	// Static: the image has no libc.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatalf("read probe: %v", err)
	}
	return data
}

// writeBundleLayout writes the images the bundle tests run: "probe"
// (user alice, who is in group users), "scratch" (no /proc, /dev,
// /sys, run as root) and broken ones.
func writeBundleLayout(t *testing.T, probe []byte) string {
	t.Helper()
	base := &tartest.Layer{}
	base.Dir("bin").Dir("dev").Dir("proc").Dir("sys").Dir("tmp", tartest.Mode(0o1777)).
		Dir("etc").
		File("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n")).
		File("etc/group", []byte("root:x:0:\nusers:x:100:alice\nalice:x:1000:\n")).
		Dir("home").Dir("home/alice", tartest.Owner(1000, 1000)).
		Dir("root", tartest.Mode(0o700))
	// A second layer, so the mount merges: the binary and the file.
	top := &tartest.Layer{}
	top.File("probe", probe, tartest.Mode(0o755)).
		File("etc/motd", []byte(probeMotd))
	layers := []imagetest.LayerSpec{
		{Layer: base, Compression: tartest.Gzip},
		// Not zstd: umoci 0.4.7 cannot unpack it.
		{Layer: top, Compression: tartest.Plain},
	}
	config := func(c ocispec.ImageConfig) ocispec.Image {
		return ocispec.Image{Platform: imagetest.HostPlatform(), Config: c}
	}
	good := ocispec.ImageConfig{
		User:       "alice",
		Env:        []string{"PATH=/usr/bin:/bin", "GREETING=hi"},
		Entrypoint: []string{"/probe"},
		Cmd:        []string{"write", probeFile},
		WorkingDir: "/home/alice",
		StopSignal: "SIGINT",
		Labels:     map[string]string{"org.example.test": "bundle"},
	}
	noCmd := good
	noCmd.Entrypoint, noCmd.Cmd = nil, nil
	noUser := good
	noUser.User = "nobody"
	// FROM scratch: the binary and a file, no /proc, /dev or /sys.
	scratch := ocispec.ImageConfig{Entrypoint: []string{"/probe"}}
	layout := t.TempDir()
	imagetest.WriteLayout(t, layout,
		imagetest.Image{Layers: layers[1:], Config: config(scratch), Tag: "scratch"},
		imagetest.Image{Layers: layers, Config: config(good), Tag: "probe"},
		imagetest.Image{Layers: layers, Config: config(noCmd), Tag: "nocmd"},
		imagetest.Image{Layers: layers, Config: config(noUser), Tag: "nouser"},
	)
	return layout
}

// requireBundleHost skips (or, with CI=true, fails) unless this host
// can run containers on FUSE: root, /dev/fuse and runc.
func requireBundleHost(t *testing.T) string {
	t.Helper()
	runc := requireTool(t, "runc")
	var reason string
	if os.Geteuid() != 0 {
		reason = "needs root (runc, overlayfs, a FUSE mount with dev,suid)"
	} else if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		reason = fmt.Sprintf("needs /dev/fuse: %v", err)
	} else {
		f.Close()
	}
	if reason != "" {
		testenv.Unavailable(t, "%s", reason)
	}
	return runc
}

// bundleMountsUnder lists the mount points at or below dir.
func bundleMountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	var points []string
	for _, m := range mounts {
		points = append(points, m.Mountpoint)
	}
	return points
}

// bundleBlobSums maps each blob of layout to the sha256 of its bytes.
func bundleBlobSums(t *testing.T, layout string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	root := filepath.Join(layout, ocispec.ImageBlobsDir)
	err := filepath.WalkDir(root, func(p string, d iofs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			sums[p] = hashFile(t, p)
		}
		return err
	})
	if err != nil {
		t.Fatalf("walk blobs: %v", err)
	}
	return sums
}

// readBundleSpec reads a bundle's config.json.
func readBundleSpec(t *testing.T, dir string) specs.Spec {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatalf("read config.json: %v", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("decode %s/config.json: %v", dir, err)
	}
	return s
}

// bundleEnv is one test's tools and layout.
type bundleEnv struct {
	ocifs, runc string
	layout      string
	cacheDir    string
}

// bundle runs `ocifs bundle`, and removes the bundle when the test
// ends if the test has not.
func (e bundleEnv) bundle(t *testing.T, args ...string) {
	t.Helper()
	dir := args[len(args)-1]
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(dir, ".ocifs")); err == nil {
			runErr(e.ocifs, "bundle", "--rm", dir)
		}
	})
	run(t, e.ocifs, append([]string{"bundle", "--cache-dir", e.cacheDir}, args...)...)
}

// runContainer runs the bundle dir with runc and decodes what the
// probe printed.
func (e bundleEnv) runContainer(t *testing.T, dir string) probeReport {
	t.Helper()
	id := fmt.Sprintf("ocifs-test-%d-%s", os.Getpid(), strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()))
	t.Cleanup(func() { runErr(e.runc, "delete", "--force", id) })
	out := run(t, e.runc, "run", "--bundle", dir, id)
	var r probeReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("decode probe output %q: %v", out, err)
	}
	if r.Err != "" {
		t.Errorf("probe: %s", r.Err)
	}
	return r
}

func TestBundle(t *testing.T) {
	runc := requireBundleHost(t)
	e := bundleEnv{
		ocifs:    buildOcifs(t),
		runc:     runc,
		layout:   writeBundleLayout(t, buildProbe(t)),
		cacheDir: t.TempDir(),
	}
	blobs := bundleBlobSums(t, e.layout)
	ref := e.layout + ":probe"
	wantEnv := []string{"PATH=/usr/bin:/bin", "GREETING=hi", "HOME=/home/alice"}

	check := func(t *testing.T, r probeReport) {
		t.Helper()
		if r.File != probeMotd {
			t.Errorf("container read /etc/motd = %q, want %q", r.File, probeMotd)
		}
		if !reflect.DeepEqual(r.Env, wantEnv) {
			t.Errorf("container env = %q, want %q", r.Env, wantEnv)
		}
		if r.UID != 1000 || r.GID != 1000 || !reflect.DeepEqual(r.Groups, []int{100}) {
			t.Errorf("container ids = %d:%d groups %v, want 1000:1000 groups [100]", r.UID, r.GID, r.Groups)
		}
		if r.Cwd != "/home/alice" {
			t.Errorf("container cwd = %q, want %q", r.Cwd, "/home/alice")
		}
	}

	t.Run("read-only", func(t *testing.T) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "b")
		e.bundle(t, ref, dir)
		s := readBundleSpec(t, dir)
		if s.Root == nil || !s.Root.Readonly || s.Process.Terminal {
			t.Errorf("config.json root %+v terminal %v, want read-only, no terminal", s.Root, s.Process.Terminal)
		}
		if got := s.Annotations["org.opencontainers.image.stopSignal"]; got != "SIGINT" {
			t.Errorf("stopSignal annotation = %q, want SIGINT", got)
		}
		if got := s.Annotations["org.example.test"]; got != "bundle" {
			t.Errorf("label annotation = %q, want %q", got, "bundle")
		}

		r := e.runContainer(t, dir)
		check(t, r)
		if !strings.Contains(r.WriteErr, "read-only file system") {
			t.Errorf("container write to a read-only bundle: wrote %q, error %q; want EROFS", r.Wrote, r.WriteErr)
		}

		run(t, e.ocifs, "bundle", "--rm", dir)
		if m := bundleMountsUnder(t, parent); len(m) > 0 {
			t.Errorf("mounted after --rm: %q", m)
		}
		if _, err := os.Lstat(dir); !errors.Is(err, iofs.ErrNotExist) {
			t.Errorf("bundle dir after --rm: %v, want it gone", err)
		}
	})

	t.Run("writable", func(t *testing.T) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "b")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("mkdir: %v", err)
		}
		e.bundle(t, "--writable", ref, dir)
		if s := readBundleSpec(t, dir); s.Root == nil || s.Root.Readonly {
			t.Errorf("config.json root = %+v, want writable", s.Root)
		}

		r := e.runContainer(t, dir)
		check(t, r)
		if r.Wrote != "written by the container\n" || r.WriteErr != "" {
			t.Errorf("container write: read back %q, error %q", r.Wrote, r.WriteErr)
		}
		// The write is in the upper directory, and in the merged root.
		for _, p := range []string{".ocifs/upper" + probeFile, "rootfs" + probeFile} {
			if got, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(got) != r.Wrote {
				t.Errorf("read %s = %q, %v; want the container's write", p, got, err)
			}
		}

		run(t, e.ocifs, "bundle", "--rm", dir)
		if m := bundleMountsUnder(t, parent); len(m) > 0 {
			t.Errorf("mounted after --rm: %q", m)
		}
		// The directory existed: it is kept, empty.
		if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
			t.Errorf("bundle dir after --rm: %v, %v; want it empty", entries, err)
		}
	})

	t.Run("scratch image", func(t *testing.T) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "b")
		// Read-only, runc could not create /proc: refused up front.
		_, stderr, err := runErr(e.ocifs, "bundle", "--cache-dir", e.cacheDir, e.layout+":scratch", dir)
		if err == nil || !strings.Contains(string(stderr), `mount point "/proc"`) || !strings.Contains(string(stderr), "--writable") {
			t.Errorf("read-only bundle of a scratch image: %v, %q; want an error naming /proc and --writable", err, stderr)
		}
		if _, err := os.Lstat(dir); !errors.Is(err, iofs.ErrNotExist) {
			t.Errorf("refused bundle left its dir: %v", err)
		}
		// Writable, runc creates the mount points in the upper dir.
		e.bundle(t, "--writable", e.layout+":scratch", dir)
		r := e.runContainer(t, dir)
		if r.File != probeMotd || r.UID != 0 || r.GID != 0 || r.Cwd != "/" {
			t.Errorf("scratch container: file %q, ids %d:%d, cwd %q; want %q, 0:0, /", r.File, r.UID, r.GID, r.Cwd, probeMotd)
		}
		run(t, e.ocifs, "bundle", "--rm", dir)
		if m := bundleMountsUnder(t, parent); len(m) > 0 {
			t.Errorf("mounted after --rm: %q", m)
		}
	})

	t.Run("matches umoci", func(t *testing.T) {
		umoci := requireTool(t, "umoci")
		parent := t.TempDir()
		ours, theirs := filepath.Join(parent, "ocifs"), filepath.Join(parent, "umoci")
		// umoci always sets up a terminal; so does --tty.
		e.bundle(t, "--tty", ref, ours)
		run(t, umoci, "unpack", "--image", ref, theirs)
		got, want := readBundleSpec(t, ours).Process, readBundleSpec(t, theirs).Process
		if !reflect.DeepEqual(got.Args, want.Args) {
			t.Errorf("process.args = %q, umoci %q", got.Args, want.Args)
		}
		if !reflect.DeepEqual(got.Env, want.Env) {
			t.Errorf("process.env = %q, umoci %q", got.Env, want.Env)
		}
		if got.Cwd != want.Cwd {
			t.Errorf("process.cwd = %q, umoci %q", got.Cwd, want.Cwd)
		}
		if !reflect.DeepEqual(got.User, want.User) {
			t.Errorf("process.user = %+v, umoci %+v", got.User, want.User)
		}
		if got.Terminal != want.Terminal {
			t.Errorf("process.terminal = %v, umoci %v", got.Terminal, want.Terminal)
		}
		run(t, e.ocifs, "bundle", "--rm", ours)
	})

	t.Run("bad input", func(t *testing.T) {
		parent := t.TempDir()
		notEmpty := filepath.Join(parent, "full")
		if err := os.MkdirAll(notEmpty, 0o755); err != nil {
			t.Fatalf("mkdir: %v", err)
		}
		if err := os.WriteFile(filepath.Join(notEmpty, "keep"), []byte("x"), 0o644); err != nil {
			t.Fatalf("write: %v", err)
		}
		empty := filepath.Join(parent, "empty")
		if err := os.Mkdir(empty, 0o755); err != nil {
			t.Fatalf("mkdir: %v", err)
		}
		for _, tc := range []struct {
			name string
			args []string
			dir  string
			want string // in the error message
		}{
			{"no entrypoint or cmd", []string{e.layout + ":nocmd"}, filepath.Join(parent, "b1"), "no Entrypoint or Cmd"},
			{"unknown user", []string{e.layout + ":nouser"}, filepath.Join(parent, "b2"), `user "nobody"`},
			{"unknown user into empty dir", []string{e.layout + ":nouser"}, empty, `user "nobody"`},
			{"dir not empty", []string{ref}, notEmpty, "not empty"},
			{"rm of a foreign dir", []string{"--rm"}, notEmpty, "not a bundle"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				args := append([]string{"bundle", "--cache-dir", e.cacheDir}, tc.args...)
				_, stderr, err := runErr(e.ocifs, append(args, tc.dir)...)
				if err == nil {
					runErr(e.ocifs, "bundle", "--rm", tc.dir)
					t.Fatalf("ocifs %s succeeded, want an error about %q", strings.Join(args, " "), tc.want)
				}
				if !strings.Contains(string(stderr), tc.want) {
					t.Errorf("ocifs %s: error %q, want it to mention %q", strings.Join(args, " "), stderr, tc.want)
				}
				if m := bundleMountsUnder(t, parent); len(m) > 0 {
					t.Errorf("mounted after a failed bundle: %q", m)
				}
			})
		}
		// Nothing made, nothing removed.
		if _, err := os.Lstat(filepath.Join(parent, "b1")); !errors.Is(err, iofs.ErrNotExist) {
			t.Errorf("failed bundle left its dir: %v", err)
		}
		if entries, err := os.ReadDir(empty); err != nil || len(entries) > 0 {
			t.Errorf("failed bundle into an empty dir left %v, %v", entries, err)
		}
		if entries, err := os.ReadDir(notEmpty); err != nil || len(entries) != 1 {
			t.Errorf("refused dir now has %v, %v; want only keep", entries, err)
		}
	})

	if got := bundleBlobSums(t, e.layout); !reflect.DeepEqual(got, blobs) {
		t.Errorf("layout blobs changed by the bundles:\nbefore %v\nafter  %v", blobs, got)
	}
}
