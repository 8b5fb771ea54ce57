#!/usr/bin/env bash
# Configure and build Portcullis with CMake.
#
#   scripts/build.sh                          # RelWithDebInfo into build/
#   scripts/build.sh --dir build-asan -DCMAKE_BUILD_TYPE=Debug -DPORTCULLIS_SANITIZE=ON
#
# Arguments after the options are passed to the CMake configure step, after the
# default -DCMAKE_BUILD_TYPE=RelWithDebInfo (so a later -DCMAKE_BUILD_TYPE wins).
# The binary is <dir>/portcullis.  Dependencies: scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

usage() {
	cat <<'EOF'
usage: scripts/build.sh [--dir DIR] [CMAKE_ARGS...]

  --dir DIR    build directory, relative to the repository root or absolute (default: build)
  CMAKE_ARGS   extra arguments for the configure step, e.g. -DPORTCULLIS_WERROR=ON
EOF
}

dir=build
cmake_args=()
while (($# > 0)); do
	case "$1" in
	--dir)
		if (($# < 2)); then
			echo "build: --dir needs a directory" >&2
			exit 2
		fi
		dir=$2
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		cmake_args+=("$1")
		shift
		;;
	esac
done

for cmd in cmake cc pkg-config; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "build: $cmd not found; run scripts/install-deps.sh first" >&2
		exit 1
	fi
done

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${cmake_args[@]}"
cmake --build "$dir" -j"$jobs"
