//go:build !unix

package tarindex

import "context"

// lockFile is a no-op where flock is missing: the rename still keeps
// the cache consistent, concurrent processes may just both build.
func lockFile(ctx context.Context, p string) (func(), error) { return func() {}, nil }
