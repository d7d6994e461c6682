#!/bin/sh
# Builds the Go baseline (bench/issue9_go, no dependencies: works offline)
# into a temporary directory and runs bench_issue9 with it: one table of
# issue 9's rows, libcoro beside Go (GOMAXPROCS=1) and Boost.Context.
#
#   bench/run-issue9.sh BUILDDIR [bench_issue9 options: --runs N, --only CASE,..., --scale F]
#
# Needs Debian's golang-go.  Without go, runs bench_issue9 without the Go
# rows.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run-issue9.sh BUILDDIR [--runs N] [--only CASE,...] [--scale F]}
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if command -v go >/dev/null 2>&1; then
    (cd "$here/issue9_go" && GOFLAGS=-mod=mod GOCACHE="$tmp/cache" \
        GOPATH="$tmp/gopath" go build -o "$tmp/issue9_go" .)
    "$build/bench/bench_issue9" --go "$tmp/issue9_go" "$@"
else
    echo "go not found: no Go baseline" >&2
    "$build/bench/bench_issue9" "$@"
fi
