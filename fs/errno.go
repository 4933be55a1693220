package fs

import (
	"context"
	"errors"
	iofs "io/fs"
	"sync"
	"syscall"

	"github.com/ocifs/ocifs/overlay"
)

// errno turns err into the errno the kernel gets. It is the only place
// in ocifs where errors become errnos: errors.As finds a syscall.Errno
// anywhere in a %w chain (a *os.PathError, a wrapped ENOENT), and
// errors.Is maps the io/fs and context sentinels. Everything else is an
// I/O error whose reason only the log can tell, so it is logged, once
// per distinct message.
func (f *filesystem) errno(op string, n *overlay.Node, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if e, ok := knownErrno(err); ok {
		return e
	}
	f.errs.log(f, op, n, err)
	return syscall.EIO
}

// knownErrno maps errors with a well-defined errno.
func knownErrno(err error) (syscall.Errno, bool) {
	var e syscall.Errno
	switch {
	case errors.As(err, &e) && e != 0:
		return e, true
	case errors.Is(err, context.Canceled):
		// The kernel interrupted the request (the caller got a
		// signal); EINTR is what it expects back.
		return syscall.EINTR, true
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.ETIMEDOUT, true
	case errors.Is(err, iofs.ErrNotExist):
		return syscall.ENOENT, true
	case errors.Is(err, iofs.ErrPermission):
		return syscall.EACCES, true
	case errors.Is(err, iofs.ErrInvalid):
		return syscall.EINVAL, true
	case errors.Is(err, iofs.ErrClosed):
		return syscall.EBADF, true
	}
	return 0, false
}

// maxLoggedErrors bounds the memory spent remembering which errors
// were logged; past it, every error is logged again.
const maxLoggedErrors = 1024

// errorLog logs each distinct unknown error once: a corrupt blob read
// by a busy directory walk would otherwise repeat the same line
// thousands of times.
type errorLog struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (l *errorLog) log(f *filesystem, op string, n *overlay.Node, err error) {
	msg := err.Error()
	l.mu.Lock()
	if l.seen == nil {
		l.seen = map[string]bool{}
	}
	if l.seen[msg] {
		l.mu.Unlock()
		return
	}
	if len(l.seen) < maxLoggedErrors {
		l.seen[msg] = true
	}
	l.mu.Unlock()

	attrs := []any{"op", op, "err", err}
	if n != nil {
		attrs = append(attrs, "ino", n.ID, "layer", n.Layer)
		if n.Entry != nil {
			// The path the layer stores the file under (for a
			// hardlink, its target's), which is what a user
			// looks for in the mount.
			attrs = append(attrs, "path", n.Entry.Name)
		}
	}
	f.log.Error("answering EIO", attrs...)
}
