#!/bin/sh
# Builds the Go baseline (bench/chan_go, no dependencies: works offline)
# into a temporary directory and runs bench_mt with it, for the row of Go's
# channel ping-pong with GOMAXPROCS=2.
#
#   bench/run-mt.sh BUILDDIR [round_trips [runs]]
#
# Needs Debian's golang-go.  Without go, runs bench_mt without the Go row.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run-mt.sh BUILDDIR [round_trips [runs]]}
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if command -v go >/dev/null 2>&1; then
    (cd "$here/chan_go" && GOFLAGS=-mod=mod GOCACHE="$tmp/cache" \
        GOPATH="$tmp/gopath" go build -o "$tmp/chan_go" .)
    "$build/bench/bench_mt" "$@" --go "$tmp/chan_go"
else
    echo "go not found: no Go baseline" >&2
    "$build/bench/bench_mt" "$@"
fi
