package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// writeJSON writes v as indented JSON, the --json output of every
// command.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// humanSize formats a byte count with decimal units, as docker and
// skopeo do.
func humanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), -1
	for f >= unit && i < 3 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.3g %cB", f, "kMGT"[i])
}

// jsonList formats a command line as a JSON array, which keeps
// arguments with spaces readable and unambiguous.
func jsonList(args []string) string {
	if len(args) == 0 {
		return ""
	}
	b, _ := json.Marshal(args)
	return strings.ReplaceAll(string(b), `","`, `", "`)
}
