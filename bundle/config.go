package bundle

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Errors RuntimeConfig wraps; test for them with errors.Is.
var (
	ErrNoCommand      = errors.New("bundle: image config has no Entrypoint or Cmd")
	ErrUnknownUser    = errors.New("bundle: user not found in " + PasswdPath)
	ErrUnknownGroup   = errors.New("bundle: group not found in " + GroupPath)
	ErrMalformedEntry = errors.New("bundle: malformed entry")
	ErrIDOutOfRange   = errors.New("bundle: id out of range")
	ErrUnsupportedOS  = errors.New("bundle: unsupported os")
	ErrInvalidConfig  = errors.New("bundle: invalid image config")
)

// Annotation keys conversion.md sets from image config fields
// ("Annotation Fields" and "Config.ExposedPorts").
const (
	AnnotationOS           = "org.opencontainers.image.os"
	AnnotationArchitecture = "org.opencontainers.image.architecture"
	AnnotationVariant      = "org.opencontainers.image.variant"
	AnnotationOSVersion    = "org.opencontainers.image.os.version"
	AnnotationOSFeatures   = "org.opencontainers.image.os.features"
	AnnotationAuthor       = "org.opencontainers.image.author"
	AnnotationCreated      = "org.opencontainers.image.created"
	AnnotationStopSignal   = "org.opencontainers.image.stopSignal"
	AnnotationExposedPorts = "org.opencontainers.image.exposedPorts"
)

// RootfsDir is the bundle's root filesystem directory, relative to the
// bundle (root.path), as runc spec and umoci unpack name it.
const RootfsDir = "rootfs"

// DefaultPath is process.env's PATH when the image sets none: the one
// runc spec, umoci and Docker use.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultHostname is the container's hostname unless Options say
// otherwise.
const DefaultHostname = "ocifs"

// Options tunes RuntimeConfig. The zero value gives a read-only root
// and no terminal.
type Options struct {
	// TTY sets process.terminal and adds TERM=xterm (unless the image
	// sets TERM), as runc spec does for its terminal.
	TTY bool
	// Writable leaves root.readonly false, for a root filesystem the
	// container may write to (an overlay over the image).
	Writable bool
	// Hostname is the container's hostname; empty means
	// DefaultHostname.
	Hostname string
}

// RuntimeConfig converts an image config into a runtime config
// (conversion.md), reading /etc/passwd and /etc/group through files
// when Config.User needs them. files may be nil for an image without
// them; then only numeric users and groups resolve.
func RuntimeConfig(img ocispec.Image, files FileReader, opts Options) (*specs.Spec, error) {
	// Everything below the process section (namespaces, /proc, /sys,
	// masked paths) is Linux's; umoci refuses other systems too.
	if img.OS != "linux" {
		return nil, fmt.Errorf("check os %q: %w", img.OS, ErrUnsupportedOS)
	}
	args := slices.Concat(img.Config.Entrypoint, img.Config.Cmd)
	if len(args) == 0 {
		return nil, fmt.Errorf("set process.args: %w", ErrNoCommand)
	}
	cwd := "/"
	if wd := img.Config.WorkingDir; wd != "" {
		// The runtime-spec requires an absolute cwd; umoci passes a
		// relative one through and runc then refuses it at start.
		if !path.IsAbs(wd) {
			return nil, fmt.Errorf("set process.cwd: WorkingDir %q is not absolute: %w", wd, ErrInvalidConfig)
		}
		cwd = wd
	}
	eu, err := resolveUser(img.Config.User, files)
	if err != nil {
		return nil, fmt.Errorf("set process.user: %w", err)
	}
	env, err := processEnv(img.Config.Env, eu.home, opts.TTY)
	if err != nil {
		return nil, err
	}
	mounts, err := volumeMounts(img.Config.Volumes)
	if err != nil {
		return nil, err
	}
	hostname := opts.Hostname
	if hostname == "" {
		hostname = DefaultHostname
	}

	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal:        opts.TTY,
			User:            eu.user,
			Args:            args,
			Env:             env,
			Cwd:             cwd,
			Capabilities:    defaultCapabilities(),
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:        &specs.Root{Path: RootfsDir, Readonly: !opts.Writable},
		Hostname:    hostname,
		Mounts:      append(defaultMounts(), mounts...),
		Annotations: annotations(img),
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{
				// Deny every device; runc still creates the
				// standard ones (/dev/null, …) it needs.
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
			},
			MaskedPaths: []string{
				"/proc/acpi",
				"/proc/asound",
				"/proc/kcore",
				"/proc/keys",
				"/proc/latency_stats",
				"/proc/timer_list",
				"/proc/timer_stats",
				"/proc/sched_debug",
				"/sys/firmware",
				"/sys/devices/virtual/powercap",
				"/proc/scsi",
			},
			ReadonlyPaths: []string{
				"/proc/bus",
				"/proc/fs",
				"/proc/irq",
				"/proc/sys",
				"/proc/sysrq-trigger",
			},
		},
	}, nil
}

// processEnv builds process.env the way umoci does: it starts from a
// default PATH, then each image variable replaces a same-named one in
// place or is appended, so a later duplicate in Config.Env wins.
//
// Two differences from umoci 0.4.7, both for conversion.md's "an
// implementation-defined default SHOULD NOT result in an environment
// variable being removed or changed": HOME from /etc/passwd is added
// only when the image sets none (umoci overwrites it), and TERM=xterm
// only comes with a terminal (umoci always adds it).
func processEnv(imageEnv []string, home string, tty bool) ([]string, error) {
	env := []string{"PATH=" + DefaultPath}
	if tty {
		env = append(env, "TERM=xterm")
	}
	fromImage := map[string]bool{}
	for _, kv := range imageEnv {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("set process.env: Env entry %q is not NAME=VALUE: %w", kv, ErrInvalidConfig)
		}
		env = setEnv(env, name, kv)
		fromImage[name] = true
	}
	if home != "" && !fromImage["HOME"] {
		env = setEnv(env, "HOME", "HOME="+home)
	}
	return env, nil
}

// setEnv replaces the variable name in env with kv, or appends kv.
func setEnv(env []string, name, kv string) []string {
	for i, e := range env {
		if n, _, _ := strings.Cut(e, "="); n == name {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

// volumeMounts gives each Config.Volumes entry a tmpfs, with umoci's
// options, so that data written there stays out of the root
// filesystem (conversion.md, "Optional Fields", note 2) and so that a
// read-only root still has writable volumes. Sorted, so a volume inside
// another is mounted after it.
func volumeMounts(volumes map[string]struct{}) ([]specs.Mount, error) {
	dests := make([]string, 0, len(volumes))
	for v := range volumes {
		if !path.IsAbs(v) {
			return nil, fmt.Errorf("set mounts: volume %q is not absolute: %w", v, ErrInvalidConfig)
		}
		dests = append(dests, path.Clean(v))
	}
	sort.Strings(dests)
	dests = slices.Compact(dests)
	mounts := make([]specs.Mount, 0, len(dests))
	for _, d := range dests {
		mounts = append(mounts, specs.Mount{
			Destination: d,
			Type:        "tmpfs",
			Source:      "none",
			Options:     []string{"rw", "nosuid", "nodev", "noexec", "relatime"},
		})
	}
	return mounts, nil
}

// annotations sets conversion.md's implicit annotations, then the
// Labels on top: "the value specified in Config.Labels MUST take
// precedence" (umoci 0.4.7 gets this backwards). A field the image
// does not set gives no annotation, where umoci writes "".
func annotations(img ocispec.Image) map[string]string {
	a := map[string]string{}
	set := func(key, value string) {
		if value != "" {
			a[key] = value
		}
	}
	set(AnnotationOS, img.OS)
	set(AnnotationArchitecture, img.Architecture)
	set(AnnotationVariant, img.Variant)
	set(AnnotationOSVersion, img.OSVersion)
	// The spec gives no format for a list; commas, like exposedPorts.
	set(AnnotationOSFeatures, strings.Join(img.OSFeatures, ","))
	set(AnnotationAuthor, img.Author)
	if img.Created != nil {
		set(AnnotationCreated, img.Created.Format(time.RFC3339Nano))
	}
	set(AnnotationStopSignal, img.Config.StopSignal)
	ports := make([]string, 0, len(img.Config.ExposedPorts))
	for p := range img.Config.ExposedPorts {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	set(AnnotationExposedPorts, strings.Join(ports, ","))
	for k, v := range img.Config.Labels {
		a[k] = v
	}
	return a
}

// defaultCapabilities is runc spec's set. Unlike runc 1.1's spec (and
// umoci), no ambient or inheritable set: a non-root user gets no
// capabilities, as with runc ≥ 1.2 and Docker.
func defaultCapabilities() *specs.LinuxCapabilities {
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	return &specs.LinuxCapabilities{
		Bounding:  slices.Clone(caps),
		Effective: slices.Clone(caps),
		Permitted: slices.Clone(caps),
	}
}

// defaultMounts are runc spec's mounts.
func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts",
			Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm",
			Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue",
			Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs",
			Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
			Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}
