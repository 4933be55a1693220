package bundle

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var testFiles = mapFiles{PasswdPath: testPasswd, GroupPath: testGroup}

func linuxImage(c ocispec.ImageConfig) ocispec.Image {
	return ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Config:   c,
	}
}

// TestRuntimeConfigMatchesUmoci checks the process section against
// what umoci 0.4.7 wrote for the same image config (`umoci config`
// with the flags in the comment, then `umoci unpack`; the image has
// testPasswd and testGroup). umoci always runs with a terminal, so
// these are converted with TTY.
func TestRuntimeConfigMatchesUmoci(t *testing.T) {
	const path = "PATH=" + DefaultPath
	vectors := []struct {
		name   string
		config ocispec.ImageConfig
		want   specs.Process
	}{
		{
			// --config.cmd=/bin/c --config.cmd=arg
			name:   "cmd",
			config: ocispec.ImageConfig{Cmd: []string{"/bin/c", "arg"}},
			want: specs.Process{Args: []string{"/bin/c", "arg"}, Cwd: "/",
				Env: []string{path, "TERM=xterm", "HOME=/root"}},
		},
		{
			// --config.entrypoint=/bin/ep --config.entrypoint=-x
			name:   "entrypoint",
			config: ocispec.ImageConfig{Entrypoint: []string{"/bin/ep", "-x"}},
			want: specs.Process{Args: []string{"/bin/ep", "-x"}, Cwd: "/",
				Env: []string{path, "TERM=xterm", "HOME=/root"}},
		},
		{
			// --config.entrypoint=/bin/ep --config.cmd=arg --config.workingdir=/work
			name:   "entrypoint, cmd and cwd",
			config: ocispec.ImageConfig{Entrypoint: []string{"/bin/ep"}, Cmd: []string{"arg"}, WorkingDir: "/work"},
			want: specs.Process{Args: []string{"/bin/ep", "arg"}, Cwd: "/work",
				Env: []string{path, "TERM=xterm", "HOME=/root"}},
		},
		{
			// --config.env=FOO=bar
			name:   "env without PATH",
			config: ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{"FOO=bar"}},
			want: specs.Process{Args: []string{"sh"}, Cwd: "/",
				Env: []string{path, "TERM=xterm", "FOO=bar", "HOME=/root"}},
		},
		{
			// --config.env=PATH=/x --config.env=A=b
			name:   "env with PATH",
			config: ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/x", "A=b"}},
			want: specs.Process{Args: []string{"sh"}, Cwd: "/",
				Env: []string{"PATH=/x", "TERM=xterm", "A=b", "HOME=/root"}},
		},
		{
			// --config.env=A=1 --config.env=A=2
			name:   "duplicate env",
			config: ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{"A=1", "A=2"}},
			want: specs.Process{Args: []string{"sh"}, Cwd: "/",
				Env: []string{path, "TERM=xterm", "A=2", "HOME=/root"}},
		},
		{
			// --config.user=alice
			name:   "user name",
			config: ocispec.ImageConfig{Cmd: []string{"sh"}, User: "alice"},
			want: specs.Process{Args: []string{"sh"}, Cwd: "/",
				User: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{100, 50, 10}},
				Env:  []string{path, "TERM=xterm", "HOME=/home/alice"}},
		},
		{
			// --config.user=5000
			name:   "unlisted uid",
			config: ocispec.ImageConfig{Cmd: []string{"sh"}, User: "5000"},
			want: specs.Process{Args: []string{"sh"}, Cwd: "/",
				User: specs.User{UID: 5000},
				Env:  []string{path, "TERM=xterm"}},
		},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			s, err := RuntimeConfig(linuxImage(tc.config), testFiles, Options{TTY: true})
			if err != nil {
				t.Fatalf("RuntimeConfig error: %v", err)
			}
			p := s.Process
			got := specs.Process{Args: p.Args, Env: p.Env, Cwd: p.Cwd, User: p.User}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("RuntimeConfig process =\n%+v\nwant\n%+v", got, tc.want)
			}
			if !p.Terminal {
				t.Errorf("RuntimeConfig process.terminal = false with TTY")
			}
		})
	}
}

func TestRuntimeConfigProcess(t *testing.T) {
	const path = "PATH=" + DefaultPath
	vectors := []struct {
		name     string
		config   ocispec.ImageConfig
		wantArgs []string
		wantEnv  []string
		wantCwd  string
	}{
		{"no terminal, no TERM", ocispec.ImageConfig{Cmd: []string{"x"}},
			[]string{"x"}, []string{path, "HOME=/root"}, "/"},
		// umoci replaces HOME=/mine with /home/alice; conversion.md
		// says a default should not change an image's variable.
		{"image HOME kept", ocispec.ImageConfig{Cmd: []string{"x"}, User: "alice", Env: []string{"HOME=/mine"}},
			[]string{"x"}, []string{path, "HOME=/mine"}, "/"},
		{"image TERM kept", ocispec.ImageConfig{Cmd: []string{"x"}, Env: []string{"TERM=dumb"}},
			[]string{"x"}, []string{path, "TERM=dumb", "HOME=/root"}, "/"},
		{"empty value", ocispec.ImageConfig{Cmd: []string{"x"}, Env: []string{"A=", "B==c"}},
			[]string{"x"}, []string{path, "A=", "B==c", "HOME=/root"}, "/"},
		{"no home", ocispec.ImageConfig{Cmd: []string{"x"}, User: "nohome"},
			[]string{"x"}, []string{path}, "/"},
		{"empty cmd after entrypoint", ocispec.ImageConfig{Entrypoint: []string{"/e"}, Cmd: []string{}},
			[]string{"/e"}, []string{path, "HOME=/root"}, "/"},
		{"cwd", ocispec.ImageConfig{Cmd: []string{"x"}, WorkingDir: "/a/b"},
			[]string{"x"}, []string{path, "HOME=/root"}, "/a/b"},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			s, err := RuntimeConfig(linuxImage(tc.config), testFiles, Options{})
			if err != nil {
				t.Fatalf("RuntimeConfig error: %v", err)
			}
			p := s.Process
			if !reflect.DeepEqual(p.Args, tc.wantArgs) {
				t.Errorf("RuntimeConfig args = %q, want %q", p.Args, tc.wantArgs)
			}
			if !reflect.DeepEqual(p.Env, tc.wantEnv) {
				t.Errorf("RuntimeConfig env = %q, want %q", p.Env, tc.wantEnv)
			}
			if p.Cwd != tc.wantCwd {
				t.Errorf("RuntimeConfig cwd = %q, want %q", p.Cwd, tc.wantCwd)
			}
			if p.Terminal {
				t.Errorf("RuntimeConfig terminal = true without TTY")
			}
		})
	}
}

func TestRuntimeConfigErrors(t *testing.T) {
	vectors := []struct {
		name  string
		image ocispec.Image
		want  error
	}{
		{"no entrypoint or cmd", linuxImage(ocispec.ImageConfig{}), ErrNoCommand},
		{"empty entrypoint and cmd", linuxImage(ocispec.ImageConfig{Entrypoint: []string{}, Cmd: []string{}}), ErrNoCommand},
		{"unknown user", linuxImage(ocispec.ImageConfig{Cmd: []string{"x"}, User: "nobody"}), ErrUnknownUser},
		{"unknown group", linuxImage(ocispec.ImageConfig{Cmd: []string{"x"}, User: "alice:nogroup"}), ErrUnknownGroup},
		{"env without =", linuxImage(ocispec.ImageConfig{Cmd: []string{"x"}, Env: []string{"A"}}), ErrInvalidConfig},
		{"env without name", linuxImage(ocispec.ImageConfig{Cmd: []string{"x"}, Env: []string{"=a"}}), ErrInvalidConfig},
		{"relative cwd", linuxImage(ocispec.ImageConfig{Cmd: []string{"x"}, WorkingDir: "rel"}), ErrInvalidConfig},
		{"relative volume", linuxImage(ocispec.ImageConfig{Cmd: []string{"x"}, Volumes: map[string]struct{}{"data": {}}}), ErrInvalidConfig},
		{"windows", ocispec.Image{Platform: ocispec.Platform{OS: "windows", Architecture: "amd64"},
			Config: ocispec.ImageConfig{Cmd: []string{"x"}}}, ErrUnsupportedOS},
		{"no os", ocispec.Image{Config: ocispec.ImageConfig{Cmd: []string{"x"}}}, ErrUnsupportedOS},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			s, err := RuntimeConfig(tc.image, testFiles, Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("RuntimeConfig = %v, %v; want error %v", s, err, tc.want)
			}
			if s != nil {
				t.Errorf("RuntimeConfig returned a spec with error %v", err)
			}
		})
	}
}

func TestRuntimeConfigAnnotations(t *testing.T) {
	created := time.Date(2015, 10, 31, 22, 22, 56, 15925234, time.UTC)
	img := ocispec.Image{
		Created: &created,
		Author:  "Alyssa P. Hacker <alyspdev@example.com>",
		Platform: ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8",
			OSVersion: "6.1", OSFeatures: []string{"a", "b"}},
		Config: ocispec.ImageConfig{
			Cmd:          []string{"x"},
			StopSignal:   "SIGTERM",
			ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}, "8080": {}},
			Labels:       map[string]string{"com.example.x": "y", "empty": ""},
		},
	}
	vectors := []struct {
		name   string
		labels map[string]string // added to the image's labels
		want   map[string]string
	}{
		{"implicit", nil, map[string]string{
			AnnotationOS:           "linux",
			AnnotationArchitecture: "arm64",
			AnnotationVariant:      "v8",
			AnnotationOSVersion:    "6.1",
			AnnotationOSFeatures:   "a,b",
			AnnotationAuthor:       "Alyssa P. Hacker <alyspdev@example.com>",
			AnnotationCreated:      "2015-10-31T22:22:56.015925234Z",
			AnnotationStopSignal:   "SIGTERM",
			AnnotationExposedPorts: "53/udp,80/tcp,8080",
			"com.example.x":        "y",
			"empty":                "",
		}},
		// conversion.md: "the value specified in Config.Labels MUST
		// take precedence" (umoci 0.4.7 lets the implicit ones win).
		{"labels win", map[string]string{AnnotationOS: "plan9", AnnotationStopSignal: "SIGKILL", AnnotationExposedPorts: ""}, map[string]string{
			AnnotationOS:           "plan9",
			AnnotationArchitecture: "arm64",
			AnnotationVariant:      "v8",
			AnnotationOSVersion:    "6.1",
			AnnotationOSFeatures:   "a,b",
			AnnotationAuthor:       "Alyssa P. Hacker <alyspdev@example.com>",
			AnnotationCreated:      "2015-10-31T22:22:56.015925234Z",
			AnnotationStopSignal:   "SIGKILL",
			AnnotationExposedPorts: "",
			"com.example.x":        "y",
			"empty":                "",
		}},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			img := img
			img.Config.Labels = map[string]string{}
			for k, v := range tc.labels {
				img.Config.Labels[k] = v
			}
			img.Config.Labels["com.example.x"] = "y"
			img.Config.Labels["empty"] = ""
			s, err := RuntimeConfig(img, nil, Options{})
			if err != nil {
				t.Fatalf("RuntimeConfig error: %v", err)
			}
			if !reflect.DeepEqual(s.Annotations, tc.want) {
				t.Errorf("RuntimeConfig annotations =\n%v\nwant\n%v", s.Annotations, tc.want)
			}
		})
	}

	// Fields the image leaves out give no annotation (umoci writes "").
	s, err := RuntimeConfig(linuxImage(ocispec.ImageConfig{Cmd: []string{"x"}}), nil, Options{})
	if err != nil {
		t.Fatalf("RuntimeConfig error: %v", err)
	}
	want := map[string]string{AnnotationOS: "linux", AnnotationArchitecture: "amd64"}
	if !reflect.DeepEqual(s.Annotations, want) {
		t.Errorf("RuntimeConfig annotations = %v, want %v", s.Annotations, want)
	}
}

func TestRuntimeConfigVolumes(t *testing.T) {
	img := linuxImage(ocispec.ImageConfig{
		Cmd:     []string{"x"},
		Volumes: map[string]struct{}{"/var/log/app": {}, "/data/": {}, "/data": {}, "/var": {}},
	})
	s, err := RuntimeConfig(img, nil, Options{})
	if err != nil {
		t.Fatalf("RuntimeConfig error: %v", err)
	}
	var got []string
	for _, m := range s.Mounts[len(defaultMounts()):] {
		got = append(got, m.Destination)
		// umoci's volume mount, verbatim.
		want := specs.Mount{Destination: m.Destination, Type: "tmpfs", Source: "none",
			Options: []string{"rw", "nosuid", "nodev", "noexec", "relatime"}}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("volume mount = %+v, want %+v", m, want)
		}
	}
	// Sorted so /var is mounted before /var/log/app; "/data/" is "/data".
	if want := []string{"/data", "/var", "/var/log/app"}; !reflect.DeepEqual(got, want) {
		t.Errorf("volume mounts = %q, want %q", got, want)
	}
}

func TestRuntimeConfigDefaults(t *testing.T) {
	img := linuxImage(ocispec.ImageConfig{Cmd: []string{"x"}})
	vectors := []struct {
		name         string
		opts         Options
		wantReadonly bool
		wantTerminal bool
		wantHostname string
	}{
		{"zero options", Options{}, true, false, DefaultHostname},
		{"writable", Options{Writable: true}, false, false, DefaultHostname},
		{"tty and hostname", Options{TTY: true, Hostname: "box"}, true, true, "box"},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			s, err := RuntimeConfig(img, nil, tc.opts)
			if err != nil {
				t.Fatalf("RuntimeConfig error: %v", err)
			}
			if s.Root == nil || s.Root.Path != RootfsDir || s.Root.Readonly != tc.wantReadonly {
				t.Errorf("RuntimeConfig root = %+v, want {Path:%s Readonly:%v}", s.Root, RootfsDir, tc.wantReadonly)
			}
			if s.Process.Terminal != tc.wantTerminal {
				t.Errorf("RuntimeConfig terminal = %v, want %v", s.Process.Terminal, tc.wantTerminal)
			}
			if s.Hostname != tc.wantHostname {
				t.Errorf("RuntimeConfig hostname = %q, want %q", s.Hostname, tc.wantHostname)
			}
		})
	}

	s, err := RuntimeConfig(img, nil, Options{})
	if err != nil {
		t.Fatalf("RuntimeConfig error: %v", err)
	}
	if s.Version != specs.Version {
		t.Errorf("RuntimeConfig ociVersion = %q, want %q", s.Version, specs.Version)
	}
	var ns []specs.LinuxNamespaceType
	for _, n := range s.Linux.Namespaces {
		ns = append(ns, n.Type)
	}
	if want := []specs.LinuxNamespaceType{"pid", "network", "ipc", "uts", "mount"}; !reflect.DeepEqual(ns, want) {
		t.Errorf("RuntimeConfig namespaces = %v, want %v", ns, want)
	}
	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
	}
	if want := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"}; !reflect.DeepEqual(dests, want) {
		t.Errorf("RuntimeConfig mounts = %q, want %q", dests, want)
	}
	if !s.Process.NoNewPrivileges {
		t.Errorf("RuntimeConfig noNewPrivileges = false")
	}
	if c := s.Process.Capabilities; c == nil || len(c.Bounding) != 3 || len(c.Ambient) != 0 || len(c.Inheritable) != 0 {
		t.Errorf("RuntimeConfig capabilities = %+v, want 3 bounding, no ambient or inheritable", c)
	}
	if want := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}}; !reflect.DeepEqual(s.Process.Rlimits, want) {
		t.Errorf("RuntimeConfig rlimits = %+v, want %+v", s.Process.Rlimits, want)
	}

	// Two conversions share no slices: a caller may edit one.
	s2, _ := RuntimeConfig(img, nil, Options{})
	s2.Process.Capabilities.Bounding[0] = "CAP_SYS_ADMIN"
	s2.Mounts[0].Options = append(s2.Mounts[0].Options, "x")
	if s.Process.Capabilities.Bounding[0] == "CAP_SYS_ADMIN" || len(s.Mounts[0].Options) != 0 {
		t.Errorf("RuntimeConfig results share memory")
	}

	// What runc reads: ociVersion, root.path, process.args.
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("marshal spec: %v", err)
	}
	var back map[string]any
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("unmarshal spec: %v", err)
	}
	if back["ociVersion"] != specs.Version {
		t.Errorf("config.json ociVersion = %v, want %q", back["ociVersion"], specs.Version)
	}
}
