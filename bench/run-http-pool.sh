#!/bin/bash
# The HTTP server over a pool: bench_http on 1 thread against bench_http on
# a pool of 2 threads (each with its own SO_REUSEPORT listener), and, with
# golang-go, Go's net/http (bench/http_go -mode=http) with GOMAXPROCS=1
# and 2, loaded by wrk -t1, in the same run.
#
#   bench/run-http-pool.sh BUILDDIR
#
# On a machine with two cores wrk cannot have a core of its own beside a
# two-thread server, so nothing is pinned: the table gives req/s as
# measured (all three threads share the cores) and the server's CPU time
# per request (growth of its threads' run time, /proc/PID/task/*/
# schedstat, over the requests wrk counted), which does not depend on who
# else runs.  $ROUNDS rounds of $SECS s per connection count, the servers'
# order rotated every round; medians, min and max.
#
# Environment: ROUNDS (5), SECS (5), CONNS ("100 1000"), PORT (18180).
set -eu
build=$(cd "${1:?usage: run-http-pool.sh BUILDDIR}" && pwd)
ROUNDS=${ROUNDS:-5} SECS=${SECS:-5} CONNS=${CONNS:-"100 1000"} PORT=${PORT:-18180}
command -v wrk >/dev/null || { echo "run-http-pool.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
out=$(mktemp -d /tmp/coro-http-pool.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"' EXIT

here=$(cd "$(dirname "$0")" && pwd)
names=(1-thread 2-threads)
"$build/bench/bench_http" "$PORT" & pids+=($!)
"$build/bench/bench_http" "$((PORT + 1))" 2 & pids+=($!)
if command -v go >/dev/null; then
    gobin=$out/http_go
    (cd "$here/http_go" && GO111MODULE=on GOFLAGS=-mod=mod GOTOOLCHAIN=local \
        GOCACHE="$out/cache" GOPATH="$out/gopath" go build -o "$gobin" .)
    names+=(go-nethttp-1 go-nethttp-2)
    GOMAXPROCS=1 "$gobin" -mode=http "$((PORT + 2))" >/dev/null & pids+=($!)
    GOMAXPROCS=2 "$gobin" -mode=http "$((PORT + 3))" >/dev/null & pids+=($!)
else
    echo "go not found: no Go rows" >&2
fi
sleep 0.5

cpu_ns() { # the run time of every thread of process $1, ns
    cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f\n", s}'
}

for c in $CONNS; do
    for r in $(seq "$ROUNDS"); do
        order=()
        for k in $(seq 0 $((${#names[@]} - 1))); do
            order+=($(((k + r) % ${#names[@]})))
        done
        for i in "${order[@]}"; do
            before=$(cpu_ns "${pids[$i]}")
            res=$(wrk -t1 -c"$c" -d"${SECS}s" "http://127.0.0.1:$((PORT + i))/")
            after=$(cpu_ns "${pids[$i]}")
            reqs=$(echo "$res" | awk '/requests in/ {print $1}')
            rps=$(echo "$res" | awk '/Requests\/sec/ {print $2}')
            echo "$c ${names[$i]} $rps $(awk -v a="$after" -v b="$before" -v n="$reqs" \
                'BEGIN {printf "%.0f", (a - b) / n}')" >>"$out/raw"
        done
    done
done

echo "HTTP over a pool: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" \
    "($(nproc) CPUs), wrk -t1, $ROUNDS rounds of $SECS s, medians (min-max)"
echo
printf '| %-6s | %-12s | %-26s | %-26s |\n' conns server "req/s" "server CPU ns / request"
printf '|--------|--------------|----------------------------|----------------------------|\n'
for c in $CONNS; do
    for n in "${names[@]}"; do
        awk -v c="$c" -v n="$n" '$1 == c && $2 == n {print $3, $4}' "$out/raw" |
            python3 -c '
import sys, statistics
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
rps = [r[0] for r in rows]; cpu = [r[1] for r in rows]
print("| %-6s | %-12s | %9.0f (%7.0f-%7.0f) | %9.0f (%7.0f-%7.0f) |" % (sys.argv[1], sys.argv[2],
      statistics.median(rps), min(rps), max(rps), statistics.median(cpu), min(cpu), max(cpu)))
' "$c" "$n"
    done
done
