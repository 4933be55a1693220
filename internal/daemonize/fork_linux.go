//go:build linux && cgo

package daemonize

/*
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

// The fd the forked daemon reports on; -1 in every other process.
int ocifs_ready_fd = -1;

static pid_t ocifs_child;
static volatile sig_atomic_t ocifs_interrupted;

// daemonMount reports whether argv is `ocifs mount` that will go to the
// background. It errs on the side of no: a flag it cannot rule out
// leaves the decision to Go, which re-executes itself if it must. Long
// flags that turn the foreground on are caught by prefix (so
// --foreground=false is left to Go too); among short flags, f and h do,
// and o takes the rest of its argument or the next one as a value.
static int ocifs_daemon_mount(int argc, char **argv) {
	if (argc < 2 || strcmp(argv[1], "mount") != 0)
		return 0;
	if (getenv("OCIFS_MOUNT_DAEMON_FD") != NULL) // re-executed daemon
		return 0;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0)
			break;
		if (a[0] != '-' || a[1] == '\0')
			continue;
		if (a[1] == '-') {
			if (!strncmp(a, "--foreground", 12) || !strncmp(a, "--debug", 7) || !strncmp(a, "--help", 6))
				return 0;
			continue;
		}
		for (const char *p = a + 1; *p; p++) {
			if (*p == 'f' || *p == 'h')
				return 0;
			if (*p == 'o') {
				if (p[1] == '\0')
					i++; // the value is the next argument
				break;
			}
		}
	}
	return 1;
}

static void ocifs_forward(int sig) {
	(void)sig;
	ocifs_interrupted = 1;
	kill(ocifs_child, SIGTERM);
}

// ocifs_wait is the parent: it waits for the daemon's verdict and
// exits with it.
static void ocifs_wait(int fd, const sigset_t *mask) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = ocifs_forward;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigprocmask(SIG_SETMASK, mask, NULL);

	char msg[16384];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, msg + n, sizeof msg - 1 - n);
		if (r > 0) {
			n += (size_t)r;
			if (n < sizeof msg - 1)
				continue;
			char rest[4096]; // drain: the daemon must not block on us
			for (;;) {
				r = read(fd, rest, sizeof rest);
				if (r == 0 || (r < 0 && errno != EINTR))
					break;
			}
			break;
		}
		if (r < 0 && errno == EINTR)
			continue;
		break;
	}
	msg[n] = '\0';
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	if (!ocifs_interrupted && strcmp(msg, "ok") == 0)
		_exit(0);

	int status = 0;
	while (waitpid(ocifs_child, &status, 0) < 0 && errno == EINTR)
		;
	if (ocifs_interrupted) {
		fprintf(stderr, "ocifs: mount interrupted\n");
		_exit(1);
	}
	if (n > 0) {
		fprintf(stderr, "ocifs: %s\n", msg);
		_exit(1);
	}
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status)); // it has said why itself
	fprintf(stderr, "ocifs: mount daemon exited before the mount was ready (signal: %s)\n",
		strsignal(WTERMSIG(status)));
	_exit(1);
}

__attribute__((constructor)) static void ocifs_daemonize(int argc, char **argv, char **envp) {
	(void)envp;
	if (!ocifs_daemon_mount(argc, argv))
		return;
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return; // Go re-executes itself instead
	// No signal may kill the parent between fork and its handlers: the
	// daemon would mount with nobody waiting.
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &old);
	pid_t pid = fork();
	if (pid < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid > 0) {
		ocifs_child = pid;
		close(p[1]);
		ocifs_wait(p[0], &old);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(p[0]);
	setsid();
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) { // without it, Go explains what is missing
		dup2(null, 0);
		dup2(null, 1);
		close(null);
	}
	ocifs_ready_fd = p[1];
}
*/
import "C"

import "unsafe"

func readyFD() int { return int(C.ocifs_ready_fd) }

// daemonMount reports whether the constructor forks for args (argv,
// program name first).
func daemonMount(args []string) bool {
	argv := make([]*C.char, len(args))
	for i, a := range args {
		argv[i] = C.CString(a)
		defer C.free(unsafe.Pointer(argv[i]))
	}
	var p **C.char
	if len(argv) > 0 {
		p = &argv[0]
	}
	return C.ocifs_daemon_mount(C.int(len(args)), p) != 0
}

// Forks reports whether this build forks its daemon before Go starts.
const Forks = true
