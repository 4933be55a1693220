package image

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ParsePlatform parses "os/arch[/variant]", e.g. "linux/arm64" or
// "linux/arm/v7". The result is normalized (see HostPlatform).
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" || (len(parts) == 3 && parts[2] == "") {
		return ocispec.Platform{}, fmt.Errorf("parse platform %q: want os/arch[/variant]", s)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return normalizePlatform(p), nil
}

// FormatPlatform returns "os/arch[/variant]".
func FormatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// HostPlatform returns the platform of the running program. Like
// containerd's platforms package, it reports 32-bit arm as variant v7
// and leaves arm64's v8 implicit.
func HostPlatform() ocispec.Platform {
	return normalizePlatform(ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH})
}

// normalizePlatform maps the spellings found in the wild onto Go's
// GOOS/GOARCH values (config.md, "architecture") and gives each
// architecture one spelling of its default variant, so that equal
// platforms compare equal.
func normalizePlatform(p ocispec.Platform) ocispec.Platform {
	p.OS = strings.ToLower(p.OS)
	if p.OS == "macos" {
		p.OS = "darwin"
	}
	p.Architecture = strings.ToLower(p.Architecture)
	p.Variant = strings.ToLower(p.Variant)
	if p.Variant != "" && !strings.HasPrefix(p.Variant, "v") {
		p.Variant = "v" + p.Variant // "7" is how some tools write v7
	}
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64"
	case "i386", "i686":
		p.Architecture = "386"
	case "aarch64":
		p.Architecture = "arm64"
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	}
	switch {
	case p.Architecture == "amd64" && p.Variant == "v1",
		p.Architecture == "arm64" && (p.Variant == "v8" || p.Variant == "v8.0"):
		p.Variant = "" // the baseline, written both ways
	case p.Architecture == "arm" && p.Variant == "":
		p.Variant = "v7"
	}
	return p
}

// matchPlatform ranks how well have serves want: 0 is an exact match,
// a positive rank an older variant of the same architecture that want
// can run (arm/v6 on arm/v7, amd64 on amd64/v3), lower being better;
// ok is false if have does not run on want. Both must be normalized.
func matchPlatform(want, have ocispec.Platform) (rank int, ok bool) {
	if want.OS != have.OS || want.Architecture != have.Architecture {
		return 0, false
	}
	if want.Variant == have.Variant {
		return 0, true
	}
	w, wok := variantLevel(want)
	h, hok := variantLevel(have)
	if !wok || !hok || h > w {
		return 0, false
	}
	return w - h, true
}

// variantLevel returns the number of a "vN" variant, with the
// architecture's baseline for "".
func variantLevel(p ocispec.Platform) (int, bool) {
	if p.Variant == "" {
		switch p.Architecture {
		case "amd64":
			return 1, true
		case "arm64":
			return 8, true
		}
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(p.Variant, "v"))
	return n, err == nil
}
