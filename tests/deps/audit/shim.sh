#!/bin/sh
# Stands in for every command on PATH while the suite runs (tests/deps/setup.py
# links each name here): records which program a test or script ran for
# tests/deps/check_deps.py, then runs it with its arguments, stdin and exit status.
name=${0##*/}
shim_dir=${0%/*}
# Only shell built-ins below, and external commands only with the shim folder left
# out of PATH: a shimmed name run from here would run this script again.
real=
rest=
IFS=:
for d in $PATH; do
	[ "$d" = "$shim_dir" ] && continue
	rest=${rest:+$rest:}$d
	# shellcheck disable=SC3013 # dash, /bin/sh here, has test -ef
	if [ -z "$real" ] && [ -f "$d/$name" ] && [ -x "$d/$name" ] && ! [ "$d/$name" -ef "$0" ]; then
		real=$d/$name
	fi
done
unset IFS
if [ -z "$real" ]; then
	echo "$name: command not found" >&2
	exit 127
fi
if [ -n "$PORTCULLIS_DEPS_LOG" ]; then
	# shellcheck disable=SC1003 # deletes quotes and backslashes
	by=$(printf '%s' "${PYTEST_CURRENT_TEST:-shell}" | PATH=$rest tr -d '"\\')
	printf '{"kind": "program", "name": "%s", "path": "%s", "for": "%s", "by": "%s"}\n' \
		"$name" "$real" "${PORTCULLIS_DEPS_FOR:-test}" "$by" >>"$PORTCULLIS_DEPS_LOG" 2>/dev/null
fi
exec "$real" "$@"
