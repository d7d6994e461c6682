#!/bin/sh
# Builds the Go baseline (bench/chan_go, no dependencies: works offline)
# into a temporary directory and runs bench_chan with it.
#
#   bench/run-chan.sh BUILDDIR [round_trips [runs]]
#
# Needs Debian's golang-go.  Without go, runs bench_chan without the Go row.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run-chan.sh BUILDDIR [round_trips [runs]]}
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if command -v go >/dev/null 2>&1; then
    (cd "$here/chan_go" && GOFLAGS=-mod=mod GOCACHE="$tmp/cache" \
        GOPATH="$tmp/gopath" go build -o "$tmp/chan_go" .)
    "$build/bench/bench_chan" "$@" --go "$tmp/chan_go"
else
    echo "go not found: no Go baseline" >&2
    "$build/bench/bench_chan" "$@"
fi
