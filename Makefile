# The map of how to work on ocifs. Every target runs on a fresh Debian
# machine after `make deps` (which .ci/run and `make demo` call).

GO      ?= go
BIN     ?= bin/ocifs
DEMO    := demo
PKGS    := ./...
FUZZEXECS ?= 100000

.PHONY: all build deps demo demo-clean test unit integration lint bench fuzz clean

all: build

# build makes the binary users run: static, and with cgo for one
# reason, internal/daemonize, which forks `ocifs mount`'s daemon before
# the Go runtime starts (one Go start per mount instead of two). netgo
# and osusergo keep glibc's resolver and NSS, which do not link
# statically, out of it; ocifs uses neither. Without cgo
# (CGO_ENABLED=0 go build) ocifs works the same, re-executing itself as
# its daemon.
BUILDFLAGS := -buildvcs=auto -tags netgo,osusergo -ldflags '-linkmode external -extldflags -static'
build:
	CGO_ENABLED=1 $(GO) build $(BUILDFLAGS) -o $(BIN) ./cmd/ocifs

# deps installs the Debian packages the tests, the demo and the
# benchmarks use. It needs root (or sudo) and reaches only Debian's
# archive.
APT_PACKAGES := gcc libc6-dev fuse3 umoci skopeo runc busybox-static tar gzip zstd util-linux docker-registry
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# demo builds ocifs, builds a small sample image with umoci (busybox
# plus a second layer that deletes and replaces files) and mounts it at
# demo/mnt. `bin/ocifs umount demo/mnt` (or `make demo-clean`) ends it.
demo: deps build
	./hack/demo.sh $(DEMO)

demo-clean:
	-./$(BIN) umount $(DEMO)/mnt 2>/dev/null
	rm -rf $(DEMO)

# test runs every test, the real FUSE mounts included, with the race
# detector. As root on a machine with /dev/fuse nothing is skipped.
test: deps
	$(GO) vet $(PKGS)
	$(GO) test -race -timeout 20m $(PKGS)

unit:
	$(GO) test -race $$($(GO) list ./... | grep -v /integration)

integration: deps
	$(GO) test -race -timeout 20m -v ./integration/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@if command -v staticcheck >/dev/null; then staticcheck $(PKGS); fi

bench: deps build
	./hack/bench.sh

# fuzz runs every native fuzz target for FUZZEXECS executions (CI: 10000).
fuzz:
	./hack/fuzz.sh $(FUZZEXECS)

clean: demo-clean
	rm -rf bin
