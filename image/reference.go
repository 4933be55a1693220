package image

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Reference names an image in a layout. At most one of Tag and Digest
// is set; with neither, the layout must hold exactly one image.
type Reference struct {
	// Transport is where the image is kept; the zero value is a layout
	// directory.
	Transport Transport
	// Path is the layout directory or the archive's file; for
	// TransportRegistry, the repository as HOST[:PORT]/REPO, docker.io
	// short names expanded as skopeo expands them.
	Path string
	// Tag matches the org.opencontainers.image.ref.name annotation of
	// an index.json entry (image-layout.md, "index.json file").
	Tag string
	// Digest names a manifest or image index anywhere below index.json.
	Digest digest.Digest
}

// String returns the reference as PATH, PATH:TAG or PATH@DIGEST.
func (r Reference) String() string {
	switch {
	case r.Digest != "":
		return r.Path + "@" + r.Digest.String()
	case r.Tag != "":
		return r.Path + ":" + r.Tag
	}
	return r.Path
}

// ociPrefix is skopeo's transport name for image layouts.
const ociPrefix = "oci:"

// ParseReference parses PATH, PATH:TAG, PATH@ALG:HEX or oci:PATH[:TAG].
//
// Paths and tags may both contain ':' (a ref.name may be a full name
// such as "docker.io/library/alpine:3.20"), so the file system decides:
//
//   - if s itself is an existing directory, it is the path;
//   - otherwise the "oci:" prefix is dropped, and the longest prefix
//     that is an existing directory and is followed by ':' or '@' is
//     the path; the rest is the tag or the digest;
//   - if no prefix exists, the text after the last '@' is a digest if
//     it looks like one, otherwise the text after the last ':' is a
//     tag unless it contains '/' (then it was part of the path).
//
// A directory literally named "oci" is reached as "./oci:TAG".
func ParseReference(s string) (Reference, error) {
	if s == "" {
		return Reference{}, errors.New("parse reference: empty reference")
	}
	if isDir(s) {
		return Reference{Path: s}, nil
	}
	rest := strings.TrimPrefix(s, ociPrefix)
	if rest == "" {
		return Reference{}, fmt.Errorf("parse reference %q: empty path", s)
	}
	for i := len(rest) - 1; i > 0; i-- {
		if (rest[i] == ':' || rest[i] == '@') && isDir(rest[:i]) {
			return splitReference(s, rest, i)
		}
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 && strings.Contains(rest[i:], ":") && !strings.Contains(rest[i:], "/") {
		return splitReference(s, rest, i)
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i:], "/") {
		return splitReference(s, rest, i)
	}
	return Reference{Path: rest}, nil
}

// splitReference splits rest at i, a ':' before a tag or an '@' before
// a digest; s is the whole input, for messages.
func splitReference(s, rest string, i int) (Reference, error) {
	ref := Reference{Path: rest[:i]}
	after := rest[i+1:]
	if ref.Path == "" {
		return Reference{}, fmt.Errorf("parse reference %q: empty path", s)
	}
	if rest[i] == ':' {
		if after == "" {
			return Reference{}, fmt.Errorf("parse reference %q: empty tag", s)
		}
		ref.Tag = after
		return ref, nil
	}
	ref.Digest = digest.Digest(after)
	if err := checkDigest(ref.Digest); err != nil {
		return Reference{}, fmt.Errorf("parse reference %q: %w", s, err)
	}
	return ref, nil
}

// checkDigest accepts the digests this package can verify: sha256,
// sha384 and sha512, well-formed (descriptor.md, "Digests").
func checkDigest(d digest.Digest) error {
	err := d.Validate()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, digest.ErrDigestUnsupported):
		return fmt.Errorf("%w %q", ErrUnsupportedDigest, d.Algorithm())
	}
	return fmt.Errorf("invalid digest %q: %w", d, err)
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
