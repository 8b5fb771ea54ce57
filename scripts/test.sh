#!/usr/bin/env bash
# Run every test of Portcullis: unit (cmocka) and end-to-end (pytest driving the
# real binary), first in a normal build (build/), then again in an
# AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan/).  Both builds
# treat compiler warnings as errors.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh --no-asan       # skip the sanitizer build and run
#   scripts/test.sh -R unit/        # extra arguments go to both ctest runs
#
# The last line is "N passed, N failed", summed over both runs; the exit status
# is non-zero when a build failed, a test failed, or no test ran.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

usage() {
	cat <<'EOF'
usage: scripts/test.sh [--no-asan] [CTEST_ARGS...]

  --no-asan    run only the normal build's tests, not the ASan+UBSan build's
  CTEST_ARGS   passed to both ctest runs, e.g. -R unit/ or -L e2e, or -L heavy for
               only the image and systemd tests
Environment: PORTCULLIS_TEST_JOBS (ctest -j, default 2), PORTCULLIS_SKIP_DEPS=1,
PORTCULLIS_SKIP_HEAVY=1 (leave out the "heavy" packaging tests: image, systemd;
CI runs them).
EOF
}

asan=true
ctest_args=()
for arg in "$@"; do
	case "$arg" in
	--no-asan) asan=false ;;
	-h | --help)
		usage
		exit 0
		;;
	*) ctest_args+=("$arg") ;;
	esac
done

# Tests take their ports from the OS (port 0), so they can run side by side.
jobs=${PORTCULLIS_TEST_JOBS:-2}

log=$(mktemp)
trap 'rm -f "$log"' EXIT

total_passed=0
total_failed=0
status=0

# run_ctest LABEL DIR: run the suite in DIR, add its counts to the totals.
run_ctest() {
	local label=$1 dir=$2 rc summary failed total
	echo "== ctest ($label): $dir"
	set +e
	ctest --test-dir "$dir" --output-on-failure --timeout 900 -j"$jobs" "${ctest_args[@]}" 2>&1 |
		tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	# "100% tests passed, 0 tests failed out of 12"
	summary=$(sed -n 's/^.*tests passed, \([0-9][0-9]*\) tests\{0,1\} failed out of \([0-9][0-9]*\).*$/\1 \2/p' "$log" | tail -n 1)
	if [[ -z "$summary" ]] && grep -q '^No tests were found' "$log"; then
		echo "test: ctest ($label) found no test to run" >&2
		status=1
		return
	fi
	if [[ -z "$summary" ]]; then
		echo "test: ctest ($label) printed no summary (exit status $rc); counting it as a failure" >&2
		total_failed=$((total_failed + 1))
		status=1
		return
	fi
	read -r failed total <<<"$summary"
	if ((total == 0)); then
		echo "test: ctest ($label) ran no test" >&2
		status=1
	fi
	total_passed=$((total_passed + total - failed))
	total_failed=$((total_failed + failed))
	if ((failed > 0 || rc != 0)); then
		status=1
	fi
}

# The heavy packaging tests (label "heavy": the image built from a debootstrapped
# base, the unit booted under systemd-nspawn) run in the first pass only: CMake
# registers them only in a build without sanitizers, because they build and run
# their own binaries (the image compiles Portcullis in its Dockerfile; the unit
# gets the plain binary), so the sanitizer build would only repeat them.  On a
# fresh clone they take minutes (debootstrap; cached in build/image-cache after
# that), and their time is printed after the first pass.  PORTCULLIS_SKIP_HEAVY=1
# leaves them out (local runs; CI runs them).
if [[ "${PORTCULLIS_SKIP_HEAVY:-0}" == 1 ]]; then
	ctest_args+=(-LE heavy)
fi

scripts/install-deps.sh
# Every peer a test needs was just installed: a test that finds one missing fails
# instead of skipping (tests skip only when run by hand on a machine without them).
export PORTCULLIS_REQUIRE_ALL=1

echo "== build (RelWithDebInfo, -Werror): build/"
if ! scripts/build.sh --dir build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTCULLIS_WERROR=ON \
	-DPORTCULLIS_SANITIZE=OFF; then
	echo "test: the build in build/ failed; no test was run" >&2
	exit 1
fi
run_ctest "RelWithDebInfo" build
# "  7/81 Test  #7: packaging/test_image .......   Passed  212.35 sec"
heavy_seconds=$(sed -n 's/^.*Test *#[0-9]*: packaging\/test_\(image\|systemd\) .* \([0-9.]*\) sec$/\2/p' "$log" |
	awk '{ s += $1 } END { printf "%d", s }')
if [[ "${PORTCULLIS_SKIP_HEAVY:-0}" != 1 ]]; then
	echo "== heavy tests (image, systemd): ${heavy_seconds} s of the first pass"
fi

if [[ "$asan" == true ]]; then
	echo "== build (Debug, ASan+UBSan, -Werror): build-asan/"
	if ! scripts/build.sh --dir build-asan -DCMAKE_BUILD_TYPE=Debug -DPORTCULLIS_SANITIZE=ON \
		-DPORTCULLIS_WERROR=ON; then
		echo "test: the sanitizer build in build-asan/ failed" >&2
		echo "${total_passed} passed, $((total_failed + 1)) failed"
		exit 1
	fi
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	run_ctest "ASan+UBSan" build-asan
fi

echo "${total_passed} passed, ${total_failed} failed"
exit "$status"
