#!/usr/bin/env bash
# Runs each native Go fuzz target of the module for a fixed number of
# executions.
# Usage: hack/fuzz.sh [EXECS]   (default 100000; CI runs 10000)
#
# The budget is a count, not a duration: with a duration, Go 1.26's fuzz
# coordinator can report "context deadline exceeded" as a failure when
# the time runs out while a worker is mid-input (golang/go#75804, fixed
# in Go 1.27). A count has no deadline to race. Minimizing is bounded
# too (FUZZ_MINIMIZE, default 1000x), so an input that finds new
# coverage costs at most that many runs, not up to a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
execs=${1:-100000}
execs=${execs%x}
minimize=${FUZZ_MINIMIZE:-1000x}
for pkg in $(go list ./...); do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "== $pkg $target (${execs}x)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "${execs}x" \
			-fuzzminimizetime "$minimize" "$pkg"
	done
done
