#!/usr/bin/env bash
# make bench: ocifs against the tools people use today, on generated
# images of 10k, 100k and 300k files, in one run (bench/harness). Writes
# bench/out/results/*.json, the generated section of docs/benchmarks.md
# and docs/bench-*.png. Needs root (dropping the kernel caches, mounting
# fuse-overlayfs and archivemount); installs the Debian packages it uses.
#
# Usage: hack/bench.sh [extra flags for `ocifs-bench run`]
# (e.g. -keep-reclaim: leave a DAMON pageout scheme running; by default
# the run pauses it, since it evicts the pages warm rows rely on)
# Environment (defaults in brackets):
#   BENCH_SCALE       image every scenario runs on            [100k]
#   BENCH_SCALING     scales of the scaling table             [10k,100k,300k]
#   BENCH_REPS        repetitions of a method                 [5]
#   BENCH_REPS_SLOW   … whose first repetition took > 3 s     [3]
#   BENCH_SEED        seed of the generated images            [1]
#   BENCH_ONLY        only these scenarios, comma separated   [all]
#   BENCH_DOC         markdown file to update ('' for none)   [docs/benchmarks.md]
#   BENCH_GO          1: also run the go test micro-benchmarks [1]
#   BENCH_BUDGET      seconds the whole script may take: the harness
#                     cuts repetitions to stay within it  [1140, i.e. 19 min]
#   BENCH_SMOKE       1: a quick run that checks every row works: scale 3k,
#                     scaling 1k,3k,6k, 2 and 1 repetitions; docs untouched
#                     (bench/out/results/latest.md shows the result)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO=sudo
	echo "bench: not root: caches are not dropped and some mounts may fail" >&2
fi
missing=""
for p in fuse3 fuse-overlayfs archivemount gnuplot-nox umoci tar gzip zstd; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "bench: installing:$missing" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

make --no-print-directory build # static, as users get it
go build -o bin/ocifs-bench ./bench/cmd/ocifs-bench

scale=${BENCH_SCALE:-100k}
scaling=${BENCH_SCALING:-10k,100k,300k}
reps=${BENCH_REPS:-5}
reps_slow=${BENCH_REPS_SLOW:-3}
doc=${BENCH_DOC-docs/benchmarks.md}
plots=docs
smoke=()
if [ "${BENCH_SMOKE:-0}" = 1 ]; then
	scale=${BENCH_SCALE:-3k}
	scaling=${BENCH_SCALING:-1k,3k,6k}
	reps=${BENCH_REPS:-2}
	reps_slow=${BENCH_REPS_SLOW:-1}
	doc=${BENCH_DOC:-}
	plots=bench/out/results
	smoke=(-smoke)
fi
budget=${BENCH_BUDGET:-1140}
if [ "${BENCH_SMOKE:-0}" = 1 ]; then budget=${BENCH_BUDGET:-0}; fi

mkdir -p bench/out/results
gobench=()
if [ "${BENCH_GO:-1}" = 1 ]; then
	# The packages' own go test benchmarks.
	out=bench/out/results/gobench.txt
	echo "bench: go test -bench (packages' micro-benchmarks) > $out" >&2
	: >"$out"
	# At most 3 minutes for all of them together.
	gostop=$(($(date +%s) + 180))
	for pkg in $(go list ./... | grep -v -e /bench/ -e /integration); do
		left=$((gostop - $(date +%s)))
		if [ "$left" -le 10 ]; then
			echo "bench: no time left for go test -bench of $pkg" | tee -a "$out" >&2
			continue
		fi
		# grep reads all (no -q): an early exit would fail the pipe (pipefail).
		if go test -list '^Benchmark' "$pkg" 2>/dev/null | grep '^Benchmark' >/dev/null; then
			timeout $((left + 30)) go test -run '^$' -bench . -benchmem -count 1 -timeout "${left}s" "$pkg" >>"$out" 2>&1 ||
				echo "bench: $pkg: go test -bench failed or was cut at the time limit (see $out)" | tee -a "$out" >&2
		fi
	done
	gobench=(-gobench "$out")
fi

exec bin/ocifs-bench run -v \
	-ocifs bin/ocifs -out bench/out -seed "${BENCH_SEED:-1}" \
	-scale "$scale" -scaling "$scaling" -reps "$reps" -reps-slow "$reps_slow" \
	${BENCH_ONLY:+-only "$BENCH_ONLY"} \
	$([ "$budget" -gt 0 ] && echo "-deadline $((start + budget))") \
	-doc "$doc" -plots "$plots" "${smoke[@]}" "${gobench[@]}" "$@"
