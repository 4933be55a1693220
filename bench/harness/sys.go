package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// shell runs script with bash (pipefail on) in its own process group,
// so that a time limit kills the whole pipeline. It returns stdout;
// the error carries the tail of stderr.
func shell(ctx context.Context, script string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -eo pipefail; "+script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &tailBuffer{max: 2048, buf: &stderr}
	err := cmd.Run()
	if err != nil {
		if ctx.Err() != nil {
			return stdout.String(), ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if msg != "" {
			return stdout.String(), fmt.Errorf("%w: %s", err, lastLines(msg, 3))
		}
		return stdout.String(), err
	}
	return stdout.String(), nil
}

// tailBuffer keeps only the last max bytes written.
type tailBuffer struct {
	max int
	buf *bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf.Write(p)
	if t.buf.Len() > 2*t.max {
		b := append([]byte(nil), t.buf.Bytes()[t.buf.Len()-t.max:]...)
		t.buf.Reset()
		t.buf.Write(b)
	}
	return len(p), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// quote quotes s for bash.
func quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == ':' || r == '=' || r == '+' || r == ',' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// dropCaches writes dirty pages and drops the page, dentry and inode
// caches, so that the next run reads from disk. It needs root.
func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o644)
}

// mountPoints returns the mount points under dir (or dir itself), from
// /proc/self/mountinfo, deepest first.
func mountPoints(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	// Deepest first, so nested mounts go before their parents.
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if len(out[j]) > len(out[i]) {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isMounted(dir string) bool {
	for _, mp := range mountPoints(dir) {
		if mp == dir {
			return true
		}
	}
	return false
}

// unmount ends a FUSE mount: the tool's own command first (when given),
// then fusermount3 -u, then a lazy umount. It waits until the mount is
// gone from mountinfo.
func unmount(ctx context.Context, dir string, first string) error {
	if !isMounted(dir) {
		return nil
	}
	var tries []string
	if first != "" {
		tries = append(tries, first)
	}
	tries = append(tries, "fusermount3 -u "+quote(dir), "umount "+quote(dir), "umount -l "+quote(dir))
	var errs []error
	for _, t := range tries {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := shell(tctx, t)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t, err))
		}
		for range 50 {
			if !isMounted(dir) {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return fmt.Errorf("unmount %q: %w", dir, errors.Join(errs...))
}

// daemonPID finds the process serving the FUSE mount at mnt: a live
// process named like one of names whose arguments include mnt.
func daemonPID(mnt string, names ...string) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		base := filepath.Base(args[0])
		named := false
		for _, n := range names {
			if strings.Contains(base, n) {
				named = true
			}
		}
		if !named {
			continue
		}
		for _, a := range args[1:] {
			if a == mnt || strings.HasSuffix(a, "="+mnt) {
				if st, err := procStatus(pid); err == nil && st["State"] != "" && !strings.HasPrefix(st["State"], "Z") {
					return pid, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("find daemon of %q: no process %v with it in its arguments", mnt, names)
}

// procStatus reads /proc/PID/status into a map.
func procStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// peakRSS is VmHWM of pid in KiB.
func peakRSS(pid int) (int64, error) {
	st, err := procStatus(pid)
	if err != nil {
		return 0, err
	}
	v := strings.TrimSuffix(st["VmHWM"], " kB")
	return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
}

// duKiB is `du -sk` of paths together.
func duKiB(ctx context.Context, paths ...string) (int64, error) {
	args := ""
	for _, p := range paths {
		args += " " + quote(p)
	}
	out, err := shell(ctx, "du -skc"+args+" | tail -n1")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return 0, fmt.Errorf("du %v: no output", paths)
	}
	return strconv.ParseInt(f[0], 10, 64)
}

// Machine is what the numbers were measured on.
type Machine struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model"`
	MemoryKiB  int64  `json:"memory_kib"`
	Kernel     string `json:"kernel"`
	OS         string `json:"os"`
	Filesystem string `json:"filesystem"` // of the work directory
	Root       bool   `json:"root"`
}

func machine(ctx context.Context, workDir string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Root: os.Geteuid() == 0}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				f := strings.Fields(line)
				if len(f) >= 2 {
					m.MemoryKiB, _ = strconv.ParseInt(f[1], 10, 64)
				}
			}
		}
	}
	m.Kernel = firstLine(shellQuiet(ctx, "uname -r"))
	m.OS = firstLine(shellQuiet(ctx, ". /etc/os-release && echo \"$PRETTY_NAME\""))
	m.Filesystem = firstLine(shellQuiet(ctx, "df -T "+quote(workDir)+" | awk 'NR==2 {print $2\" on \"$1}'"))
	return m
}

func shellQuiet(ctx context.Context, script string) string {
	out, _ := shell(ctx, script)
	return out
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// toolVersions asks each tool for its version.
func toolVersions(ctx context.Context, ocifs string) map[string]string {
	cmds := map[string]string{
		"ocifs":          "echo \"commit $(git describe --always --dirty 2>/dev/null)\"",
		"go":             "go version",
		"umoci":          "umoci --version",
		"GNU tar":        "tar --version",
		"GNU gzip":       "gzip --version",
		"zstd":           "zstd --version",
		"fuse-overlayfs": "fuse-overlayfs --version 2>&1 | grep -i 'fuse-overlayfs'",
		"archivemount":   "archivemount --version 2>&1 | head -n1",
		"libfuse3":       "fusermount3 --version 2>&1",
		"gnuplot":        "gnuplot --version",
	}
	v := map[string]string{}
	for name, c := range cmds {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := shell(tctx, c)
		cancel()
		if err != nil && strings.TrimSpace(out) == "" {
			v[name] = "not installed"
			continue
		}
		v[name] = firstLine(out)
	}
	return v
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

func have(tool string) bool {
	_, err := exec.LookPath(tool)
	return err == nil
}
