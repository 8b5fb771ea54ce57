#!/usr/bin/env bash
# Fuzz every harness of fuzz/ with libFuzzer, one after another, niced.
#
#   scripts/fuzz.sh            # 60 seconds per harness
#   scripts/fuzz.sh 600        # 10 minutes per harness
#   scripts/fuzz.sh 300 h1 saml   # only these harnesses
#
# Builds build-fuzz/ with clang (-DPORTCULLIS_FUZZ=ON: ASan + UBSan + coverage;
# warnings are errors, as in scripts/test.sh's builds),
# then runs each fuzz_<name> for SECONDS in one process (no -jobs: one core,
# nice -n 19) from fuzz/corpus/<name>/ with fuzz/dict/<name>.dict, new inputs
# going to a scratch directory that is merged (-merge=1: only inputs that add
# coverage) into fuzz/corpus/<name>/ afterwards.  Per harness it prints
# libFuzzer's last line (execs/s, cov:, ft:); the full log is
# build-fuzz/logs/<name>-<UTC time>.log.  A crash stops that harness;
# its input is left as build-fuzz/artifacts/<name>/crash-* and the exit
# status is non-zero.  Dependencies: scripts/install-deps.sh --fuzz.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

seconds=${1:-60}
if [[ "$seconds" == -h || "$seconds" == --help || ! "$seconds" =~ ^[0-9]+$ ]]; then
	echo "usage: scripts/fuzz.sh [SECONDS [HARNESS...]]" >&2
	[[ "$seconds" == -h || "$seconds" == --help ]] && exit 0
	exit 2
fi
shift || true

scripts/install-deps.sh --fuzz
CC=clang nice -n 19 scripts/build.sh --dir build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DPORTCULLIS_FUZZ=ON -DPORTCULLIS_BUILD_TESTS=OFF -DPORTCULLIS_SANITIZE=OFF \
	-DPORTCULLIS_WERROR=ON >/dev/null

if (($# > 0)); then
	harnesses=("$@")
else
	harnesses=()
	for src in fuzz/fuzz_*.c; do
		name=$(basename "$src" .c)
		harnesses+=("${name#fuzz_}")
	done
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
status=0
for name in "${harnesses[@]}"; do
	bin=build-fuzz/fuzz/fuzz_$name
	corpus=fuzz/corpus/$name
	scratch=build-fuzz/scratch/$name
	artifacts=build-fuzz/artifacts/$name
	log=build-fuzz/logs/$name-$(date -u +%Y%m%dT%H%M%S).log
	if [[ ! -x "$bin" ]]; then
		echo "fuzz: no harness $name ($bin)" >&2
		status=1
		continue
	fi
	mkdir -p "$corpus" "$scratch" "$artifacts" "$(dirname "$log")"
	dict=()
	[[ -f fuzz/dict/$name.dict ]] && dict=(-dict="fuzz/dict/$name.dict")
	echo "== $name: $seconds s"
	set +e
	nice -n 19 "$bin" -max_total_time="$seconds" -print_final_stats=1 \
		-artifact_prefix="$artifacts/" "${dict[@]}" "$scratch" "$corpus" >"$log" 2>&1
	rc=$?
	set -e
	grep -aE '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE)' "$log" | tail -n 1 || true
	grep -a '^stat::' "$log" || true
	if ((rc != 0)); then
		echo "fuzz: $name failed (exit $rc): see $log and $artifacts/" >&2
		grep -aE 'ERROR|contract broken|SUMMARY' "$log" | head -n 5 >&2 || true
		status=1
	fi
	# keep only what adds coverage
	nice -n 19 "$bin" -merge=1 "${dict[@]}" "$corpus" "$scratch" >>"$log" 2>&1 || status=1
	rm -rf "$scratch"
	echo "   corpus: $(find "$corpus" -type f | wc -l) files, $(du -sh --apparent-size "$corpus" | cut -f1)"
done
exit "$status"
