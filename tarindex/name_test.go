package tarindex

import (
	"path"
	"testing"
)

// cleanRef is Entry.Name's rule as written, without the fast path.
func cleanRef(name string) string {
	c := path.Clean("/" + name)
	if c == "/" {
		return "."
	}
	return c[1:]
}

func TestCleanName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a", "a"},
		{"./a", "a"},
		{"/a/", "a"},
		{"a//b", "a/b"},
		{"../../a", "a"},
		{"a/../..", "."},
		{"", "."},
		{".", "."},
		{"./", "."},
		{"a/./b/.", "a/b"},
		{"...", "..."},
		{".wh..wh..opq", ".wh..wh..opq"},
	} {
		if got := CleanName(tc.in); got != tc.want {
			t.Errorf("CleanName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzCleanName: the fast path never changes what the rule gives.
func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"a/b", "./a", "a/../b", "//", "a/.", ".."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := CleanName(name), cleanRef(name); got != want {
			t.Fatalf("CleanName(%q) = %q, want %q", name, got, want)
		}
	})
}
