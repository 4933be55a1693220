// Package registrytest runs a real registry and a fault-injecting
// proxy for tests.
//
// Start runs Debian's docker-registry (the distribution project's
// registry) on 127.0.0.1 and a free port, plain HTTP or TLS with a
// certificate made in code, with or without htpasswd authentication;
// Registry.Push copies an image into it with skopeo. NewFaultProxy puts
// a reverse proxy in front of any HTTP server whose faults (dropped
// connections, 500s, 429s, ignored or refused ranges, lies about what
// it sends, a slow link, outages) are switched on and off by the test,
// and which counts requests and bytes so tests can assert what was
// transferred.
//
// Without docker-registry or skopeo the test is skipped, or fails with
// CI=true (internal/testenv).
package registrytest
