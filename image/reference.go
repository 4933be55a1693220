package image

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Reference names an image: in a layout directory, an archive or a
// registry. At most one of Tag and Digest is set; with neither, the
// source must hold exactly one image.
type Reference struct {
	// Transport is where the image is kept; the zero value is a layout
	// directory.
	Transport Transport
	// Path is the layout directory or the archive's file; for
	// TransportRegistry, the repository as HOST[:PORT]/REPO, docker.io
	// short names expanded as skopeo expands them.
	Path string
	// Tag matches the org.opencontainers.image.ref.name annotation of
	// an index.json entry (image-layout.md, "index.json file"). For a
	// docker-archive it is a name among the RepoTags of manifest.json
	// or "@N", its N-th entry from 0 (skopeo's syntax); for a
	// registry, the tag.
	Tag string
	// Digest names a manifest or image index anywhere below index.json,
	// or in the registry's repository.
	Digest digest.Digest
}

// Transport prefixes, as skopeo spells them (containers-transports(5)).
const (
	ociPrefix           = "oci:"
	ociArchivePrefix    = "oci-archive:"
	dockerArchivePrefix = "docker-archive:"
	registryPrefix      = "docker://"
)

// String returns the reference as the user would type it: PATH,
// PATH:TAG or PATH@DIGEST for a layout, with the "oci-archive:",
// "docker-archive:" or "docker://" prefix for the others.
func (r Reference) String() string {
	prefix := ""
	switch r.Transport {
	case TransportOCIArchive:
		prefix = ociArchivePrefix
	case TransportDockerArchive:
		prefix = dockerArchivePrefix
	case TransportRegistry:
		prefix = registryPrefix
	}
	switch {
	case r.Digest != "":
		return prefix + r.Path + "@" + r.Digest.String()
	case r.Tag != "":
		return prefix + r.Path + ":" + r.Tag
	}
	return prefix + r.Path
}

// ParseReference parses a reference in one of these forms:
//
//   - PATH, PATH:TAG, PATH@ALG:HEX or oci:PATH[:TAG]: an image layout
//     directory; a PATH that is a regular file is read as whichever
//     archive it is (an oci-layout member: oci-archive; a
//     manifest.json member: docker-archive);
//   - oci-archive:PATH[:TAG]: an image layout in a tar file;
//   - docker-archive:PATH[:REPO:TAG|:@N|:N]: what docker save writes,
//     the image named REPO:TAG among its RepoTags, or the N-th
//     (from 0) entry of its manifest.json;
//   - docker://HOST[:PORT]/REPO[:TAG|@DIGEST]: a registry, with short
//     names expanded as docker and skopeo do ("busybox" is
//     docker.io/library/busybox:latest).
//
// Paths and tags may both contain ':' (a ref.name may be a full name
// such as "docker.io/library/alpine:3.20"), so the file system decides:
//
//   - if s itself is an existing directory (or, without a prefix, a
//     regular file), it is the path;
//   - otherwise the prefix is dropped, and the longest prefix that is
//     an existing directory (for archives, a regular file) and is
//     followed by ':' or '@' is the path; the rest is the tag or the
//     digest;
//   - if no prefix exists, the text after the last '@' is a digest if
//     it looks like one, otherwise the text after the last ':' is a
//     tag unless it contains '/' (then it was part of the path); for
//     a docker-archive, the text after the first ':' is the name.
//
// A directory literally named "oci" is reached as "./oci:TAG".
func ParseReference(s string) (Reference, error) {
	if s == "" {
		return Reference{}, errors.New("parse reference: empty reference")
	}
	switch {
	case strings.HasPrefix(s, registryPrefix):
		return parseRegistry(s)
	case strings.HasPrefix(s, ociArchivePrefix):
		return parsePath(s, strings.TrimPrefix(s, ociArchivePrefix), TransportOCIArchive, false)
	case strings.HasPrefix(s, dockerArchivePrefix):
		return parsePath(s, strings.TrimPrefix(s, dockerArchivePrefix), TransportDockerArchive, false)
	case strings.HasPrefix(s, ociPrefix) && !isDir(s):
		return parsePath(s, strings.TrimPrefix(s, ociPrefix), TransportLayout, false)
	}
	return parsePath(s, s, TransportLayout, true)
}

// parsePath parses rest, s without its transport prefix, as
// PATH[:TAG|@DIGEST] for transport t; plain is set for a reference
// without a prefix, whose PATH may be a directory or an archive.
func parsePath(s, rest string, t Transport, plain bool) (Reference, error) {
	if rest == "" {
		return Reference{}, fmt.Errorf("parse reference %q: empty path", s)
	}
	exists := isDir
	switch {
	case plain:
		exists = func(p string) bool { return isDir(p) || isFile(p) }
	case t != TransportLayout:
		exists = isFile
	}
	var ref Reference
	var err error
	switch {
	case exists(rest):
		ref = Reference{Path: rest}
	default:
		ref, err = splitAtExisting(s, rest, t, exists)
	}
	if err != nil {
		return Reference{}, err
	}
	if plain && isFile(ref.Path) {
		if t, err = archiveTransport(ref.Path); err != nil {
			return Reference{}, fmt.Errorf("parse reference %q: %w", s, err)
		}
	}
	ref.Transport = t
	if t == TransportDockerArchive {
		return dockerArchiveRef(s, ref)
	}
	return ref, nil
}

// splitAtExisting splits rest into a path and a tag or digest, by the
// longest existing prefix or else by its text (see ParseReference).
func splitAtExisting(s, rest string, t Transport, exists func(string) bool) (Reference, error) {
	for i := len(rest) - 1; i > 0; i-- {
		if (rest[i] == ':' || rest[i] == '@') && exists(rest[:i]) {
			return splitReference(s, rest, i)
		}
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 && strings.Contains(rest[i:], ":") && !strings.Contains(rest[i:], "/") {
		return splitReference(s, rest, i)
	}
	if t == TransportDockerArchive {
		// The name after the path is REPO:TAG or @N: split at the
		// first ':'.
		if i := strings.IndexByte(rest, ':'); i >= 0 {
			return splitReference(s, rest, i)
		}
		return Reference{Path: rest}, nil
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i:], "/") {
		return splitReference(s, rest, i)
	}
	return Reference{Path: rest}, nil
}

// dockerArchiveRef checks the name of a docker-archive reference: @N
// or N (an index into manifest.json), or a docker reference with a
// tag, and writes N as "@N".
func dockerArchiveRef(s string, ref Reference) (Reference, error) {
	if ref.Tag == "" {
		return ref, nil
	}
	n := strings.TrimPrefix(ref.Tag, "@")
	if i, err := strconv.Atoi(n); err == nil && n != "" && n[0] != '+' && n[0] != '-' {
		ref.Tag = "@" + strconv.Itoa(i)
		return ref, nil
	}
	if strings.HasPrefix(ref.Tag, "@") {
		return Reference{}, fmt.Errorf("parse reference %q: image index %q, want @N", s, ref.Tag)
	}
	named, err := reference.ParseNormalizedNamed(ref.Tag)
	if err != nil {
		return Reference{}, fmt.Errorf("parse reference %q: name %q: %w", s, ref.Tag, err)
	}
	if _, ok := named.(reference.Tagged); !ok {
		return Reference{}, fmt.Errorf("parse reference %q: name %q has no tag, want REPO:TAG or @N", s, ref.Tag)
	}
	return ref, nil
}

// parseRegistry parses docker://HOST[:PORT]/REPO[:TAG|@DIGEST] with
// docker's reference grammar, which expands short names.
func parseRegistry(s string) (Reference, error) {
	rest := strings.TrimPrefix(s, registryPrefix)
	if rest == "" {
		return Reference{}, fmt.Errorf("parse reference %q: empty repository", s)
	}
	named, err := reference.ParseNormalizedNamed(rest)
	if err != nil {
		return Reference{}, fmt.Errorf("parse reference %q: %w", s, err)
	}
	ref := Reference{Transport: TransportRegistry, Path: reference.Domain(named) + "/" + reference.Path(named)}
	tagged, hasTag := named.(reference.Tagged)
	digested, hasDigest := named.(reference.Digested)
	switch {
	case hasTag && hasDigest:
		return Reference{}, fmt.Errorf("parse reference %q: both a tag and a digest, want one", s)
	case hasDigest:
		ref.Digest = digested.Digest()
		if err := checkDigest(ref.Digest); err != nil {
			return Reference{}, fmt.Errorf("parse reference %q: %w", s, err)
		}
	case hasTag:
		ref.Tag = tagged.Tag()
	default:
		ref.Tag = reference.TagNameOnly(named).(reference.Tagged).Tag()
	}
	return ref, nil
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

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
