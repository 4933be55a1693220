package browse

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/tartest"
)

func TestDiff(t *testing.T) {
	// base is shared, as one blob, by both images.
	base := (&tartest.Layer{}).
		Dir("etc").File("etc/same", []byte("same")).
		File("etc/mode", []byte("m")).
		File("etc/owner", []byte("o")).
		File("etc/content", []byte("aaaa")).
		File("etc/size", []byte("short")).
		File("etc/mtime", []byte("t")).
		Symlink("etc/link", "same").
		File("etc/xattr", []byte("x"), tartest.Xattr("user.a", "1")).
		CharDev("etc/dev", 1, 3).
		Dir("gone").File("gone/f", []byte("f")).
		File("typechange", []byte("file"))
	older := (&tartest.Layer{}).File("rewritten", []byte("same bytes, another layer"))
	newer := (&tartest.Layer{}).
		File("etc/mode", []byte("m"), tartest.Mode(0o600)).
		File("etc/owner", []byte("o"), tartest.Owner(1, 1)).
		File("etc/content", []byte("bbbb")).
		File("etc/size", []byte("longer")).
		File("etc/mtime", []byte("t"), tartest.ModTime(time.Unix(1, 0))).
		Symlink("etc/link", "other").
		File("etc/xattr", []byte("x"), tartest.Xattr("user.a", "2")).
		CharDev("etc/dev", 1, 5).
		Whiteout("", "gone").
		Dir("typechange").File("typechange/kid", []byte("k")).
		Dir("new").File("new/f", []byte("n")).
		File("rewritten", []byte("same bytes, another layer"))
	a := openLayers(t, tartest.Gzip, base, older)
	b := openLayers(t, tartest.Gzip, base, newer)

	got, err := Diff(context.Background(), a, b)
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	want := []string{
		"changed /etc/content [content]",
		"changed /etc/dev [device]",
		"changed /etc/link [linkTarget]",
		"changed /etc/mode [mode]",
		"changed /etc/owner [owner]",
		"changed /etc/size [size]",
		"changed /etc/xattr [xattrs]",
		"removed /gone []",
		"removed /gone/f []",
		"added /new []",
		"added /new/f []",
		"changed /typechange [type]",
		"added /typechange/kid []",
	}
	var lines []string
	for _, c := range got {
		lines = append(lines, fmt.Sprintf("%s %s %v", c.Kind, c.Path, c.Fields))
		if c.Path == "/etc/content" && (c.OldSHA256 == "" || c.OldSHA256 == c.NewSHA256) {
			t.Errorf("content change digests %q, %q", c.OldSHA256, c.NewSHA256)
		}
	}
	if !slices.Equal(lines, want) {
		t.Errorf("Diff =\n%q\nwant\n%q", lines, want)
	}

	if got, err := Diff(context.Background(), a, a); err != nil || len(got) != 0 {
		t.Errorf("Diff(a, a) = %v, %v, want nothing", got, err)
	}
	if got, err := Diff(context.Background(), b, b); err != nil || len(got) != 0 {
		t.Errorf("Diff(b, b) = %v, %v, want nothing", got, err)
	}
	// The same image in two layouts: nothing differs either.
	b2 := openLayers(t, tartest.Gzip, base, newer)
	if got, err := Diff(context.Background(), b, b2); err != nil || len(got) != 0 {
		t.Errorf("Diff(b, copy of b) = %v, %v, want nothing", got, err)
	}
}
