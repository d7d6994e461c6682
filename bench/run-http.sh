#!/bin/bash
# The HTTP benchmark: four keep-alive "hello" servers in one run, loaded by
# wrk, their CPU time measured from /proc.
#
#   bench/run-http.sh BUILDDIR
#
#   libcoro     BUILDDIR/bench/bench_http        (one thread, a coroutine
#                                                 per connection)
#   epoll       BUILDDIR/bench/bench_http_epoll  (hand-written, level-
#                                                 triggered epoll)
#   go-raw      bench/http_go -mode=raw          (net.Conn, a goroutine per
#                                                 connection, GOMAXPROCS=1)
#   go-nethttp  bench/http_go -mode=http         (net/http, GOMAXPROCS=1)
#
# All four run at once, each pinned to CPU $SERVER_CPU; wrk (-t1) runs on
# CPU $WRK_CPU.  For each connection count, $ROUNDS rounds of $SECS s, the
# servers' order rotated every round so that a noisy spell hits them
# alike; the table has medians with min and max.  Server CPU per request
# is the growth of the server's threads' run time (/proc/PID/task/*/
# schedstat, ns) during a wrk run over the requests wrk counted; p99 is
# wrk --latency's.  Then each server is traced by strace -c -f for
# $STRACE_SECS s of -c100 (strace slows it down: these counts, not their
# times, are the point): system calls per request, and epoll_ctl per
# connection.
#
# Last, where perf may read the syscall tracepoints, a count of each
# server's system calls for $STEADY_SECS s in the middle of a wrk run per
# connection count: the steady state, without strace's slowdown.
#
# Environment: ROUNDS (3), SECS (5), CONNS ("100 1000"), STRACE_SECS (3,
# 0: no strace run), STEADY_SECS (2, 0: no perf run), PORT (first of four, 18080), SERVER_CPU (0),
# WRK_CPU (1), ONLY (a subset of the names above).  Needs wrk and
# golang-go (without go: no Go rows), and strace for the second table.
# Raw results are kept in BUILDDIR/bench/http-results/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: run-http.sh BUILDDIR}" && pwd)
ROUNDS=${ROUNDS:-3} SECS=${SECS:-5} CONNS=${CONNS:-"100 1000"}
STRACE_SECS=${STRACE_SECS:-3} PORT=${PORT:-18080}
SERVER_CPU=${SERVER_CPU:-0} WRK_CPU=${WRK_CPU:-1}
out=$build/bench/http-results
mkdir -p "$out"
rm -f "$out"/*

command -v wrk >/dev/null || { echo "run-http.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

names=(libcoro epoll)
cmds=("$build/bench/bench_http" "$build/bench/bench_http_epoll")
if command -v go >/dev/null; then
    gobin=$build/bench/http_go/http_go
    mkdir -p "$build/bench/http_go"
    (cd "$here/http_go" && GO111MODULE=on GOFLAGS=-mod=mod GOTOOLCHAIN=local \
        GOCACHE="$build/bench/http_go/cache" GOPATH="$build/bench/http_go/gopath" \
        go build -o "$gobin" .)
    names+=(go-raw go-nethttp)
    cmds+=("$gobin -mode=raw" "$gobin -mode=http")
else
    echo "go not found: no Go rows" >&2
fi
if [ -n "${ONLY:-}" ]; then
    keep_n=() keep_c=()
    for i in "${!names[@]}"; do
        case " $ONLY " in *" ${names[$i]} "*) keep_n+=("${names[$i]}"); keep_c+=("${cmds[$i]}") ;; esac
    done
    names=("${keep_n[@]}") cmds=("${keep_c[@]}")
fi

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# The pid of the process listening on 127.0.0.1:$1 (the server itself, not
# taskset or a shell around it).
listener() {
    ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1
}

for i in "${!names[@]}"; do
    port=$((PORT + i))
    [ -z "$(listener $port)" ] || { echo "port $port is taken (set PORT)" >&2; exit 1; }
    # shellcheck disable=SC2086
    GOMAXPROCS=1 taskset -c "$SERVER_CPU" ${cmds[$i]} $port >/dev/null 2>"$out/${names[$i]}.err" &
    pid=
    for _ in $(seq 100); do
        pid=$(listener $port)
        [ -n "$pid" ] && break
        sleep 0.05
    done
    [ -n "$pid" ] || { echo "${names[$i]} did not start:" >&2; cat "$out/${names[$i]}.err" >&2; exit 1; }
    pids+=("$pid")
done

# Run time of every thread of process $1, in ns.
cpu_ns() {
    local s=0 a _
    for f in /proc/"$1"/task/*/schedstat; do
        read -r a _ < "$f" && s=$((s + a))
    done
    echo $s
}

load() { # conns secs port outfile
    taskset -c "$WRK_CPU" wrk -t1 -c"$1" -d"$2"s --latency --timeout 10s \
        "http://127.0.0.1:$3/" > "$4" 2>&1 || true
}

n=${#names[@]}
echo "warming up..." >&2
for i in "${!names[@]}"; do
    load 1000 1 $((PORT + i)) /dev/null
done
for c in $CONNS; do
    for r in $(seq "$ROUNDS"); do
        for k in $(seq 0 $((n - 1))); do
            i=$(((k + r) % n))
            name=${names[$i]}
            f="$out/wrk.$name.c$c.r$r"
            echo "c$c round $r: $name" >&2
            t0=$(cpu_ns "${pids[$i]}")
            load "$c" "$SECS" $((PORT + i)) "$f"
            t1=$(cpu_ns "${pids[$i]}")
            echo "$name $c $r $((t1 - t0))" >> "$out/cpu"
        done
    done
done

if [ "$STRACE_SECS" != 0 ] && command -v strace >/dev/null; then
    for i in "${!names[@]}"; do
        name=${names[$i]}
        echo "strace: $name" >&2
        strace -c -f -p "${pids[$i]}" -o "$out/strace.$name" 2>/dev/null &
        spid=$!
        sleep 1      # attached to every thread
        load 100 "$STRACE_SECS" $((PORT + i)) "$out/wrk.$name.strace"
        sleep 0.5    # the closes of wrk's connections
        kill -INT $spid
        wait $spid || true
    done
fi

# Steady state without strace's slowdown: perf counts the system calls of
# each server over $STEADY_SECS s in the middle of a wrk run, per write
# (one write per response in all four servers; wrk does not pipeline).
STEADY_SECS=${STEADY_SECS:-2}
if [ "$STEADY_SECS" != 0 ] && command -v perf >/dev/null &&
        perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
    ev=raw_syscalls:sys_enter
    for sc in read write epoll_wait epoll_pwait epoll_pwait2 epoll_ctl; do
        ev=$ev,syscalls:sys_enter_$sc
    done
    for c in $CONNS; do
        for i in "${!names[@]}"; do
            name=${names[$i]}
            echo "perf: $name c$c" >&2
            load "$c" $((STEADY_SECS + 2)) $((PORT + i)) /dev/null &
            wpid=$!
            sleep 1
            perf stat -x, -e "$ev" -p "${pids[$i]}" -o "$out/perf.$name.c$c" -- sleep "$STEADY_SECS" \
                >/dev/null 2>&1 || true
            wait $wpid
        done
    done
fi

echo "# $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs;" \
    "server on CPU $SERVER_CPU, wrk -t1 on CPU $WRK_CPU; $ROUNDS x ${SECS} s per row"
python3 - "$out" "${names[@]}" <<'EOF'
import os, re, statistics, sys

out, names = sys.argv[1], sys.argv[2:]

def wrk(path):
    """requests, req/s, p99 in ms, error text of a wrk output."""
    t = open(path).read()
    req = re.search(r"(\d+) requests in", t)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", t)
    errs = ", ".join(l.strip() for l in t.splitlines()
                     if "errors" in l or "Non-2xx" in l)
    if not (req and rps and p99):
        return None
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    return int(req.group(1)), float(rps.group(1)), float(p99.group(1)) * scale, errs

def mmm(v, fmt):
    return "%s (%s-%s)" % (fmt % statistics.median(v), fmt % min(v), fmt % max(v))

rows = {}
for line in open(os.path.join(out, "cpu")):
    name, c, r, ns = line.split()
    w = wrk(os.path.join(out, "wrk.%s.c%s.r%s" % (name, c, r)))
    if w:
        rows.setdefault((int(c), name), []).append((w[1], int(ns) / 1e3 / w[0], w[2], w[3]))

print("| conns | server | req/s | server CPU us/request | p99 ms | CPU vs epoll |")
print("|---|---|---|---|---|---|")
med = {}
for (c, name) in sorted(rows, key=lambda k: (k[0], names.index(k[1]))):
    v = rows[(c, name)]
    med[(c, name)] = (statistics.median(x[1] for x in v), statistics.median(x[2] for x in v))
for (c, name), v in sorted(rows.items(), key=lambda kv: (kv[0][0], names.index(kv[0][1]))):
    base = med.get((c, "epoll"))
    ratio = "%.2f" % (med[(c, name)][0] / base[0]) if base else "-"
    print("| %d | %s | %s | %s | %s | %s |" % (c, name, mmm([x[0] for x in v], "%.0f"),
          mmm([x[1] for x in v], "%.2f"), mmm([x[2] for x in v], "%.2f"), ratio))
    errs = [x[3] for x in v if x[3]]
    if errs:
        print("|   | (wrk: %s) | | | | |" % errs[0])

print()
targets = [("epoll", 1.05), ("go-raw", 0.85), ("go-nethttp", 0.45)]
for c in sorted({k[0] for k in med}):
    if (c, "libcoro") not in med:
        continue
    cpu = med[(c, "libcoro")][0]
    parts = []
    for other, t in targets:
        if (c, other) in med:
            r = cpu / med[(c, other)][0]
            parts.append("%.2fx %s (target <= %.2f: %s)" % (r, other, t, "met" if r <= t else "MISSED"))
    if (c, "epoll") in med and c >= 1000:
        r = med[(c, "libcoro")][1] / med[(c, "epoll")][1]
        parts.append("p99 %.2fx epoll (target <= 1.10: %s)" % (r, "met" if r <= 1.1 else "MISSED"))
    print("c%d: libcoro CPU/request = %s" % (c, "; ".join(parts)))

st = [n for n in names if os.path.exists(os.path.join(out, "strace." + n))]
if st:
    print()
    print("System calls per request (strace -c -f, wrk -c100; its 100 connections opened and closed):")
    print()
    print("| server | requests | syscalls/request | read/recv | write/send | epoll waits | epoll_ctl | epoll_ctl per connection | others |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in st:
        w = wrk(os.path.join(out, "wrk.%s.strace" % n))
        calls = {}
        for l in open(os.path.join(out, "strace." + n)):
            f = l.split()
            if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
                calls[f[-1]] = int(f[3])
        if not w or not calls:
            continue
        req = w[0]
        tot = sum(calls.values())
        def grp(keys):
            return sum(calls.get(k, 0) for k in keys)
        rd = grp(["read", "recvfrom", "recvmsg", "readv"])
        wr = grp(["write", "sendto", "sendmsg", "writev"])
        ew = grp(["epoll_wait", "epoll_pwait", "epoll_pwait2"])
        ec = grp(["epoll_ctl"])
        other = sorted(((v, k) for k, v in calls.items()
                        if k not in ("read", "recvfrom", "recvmsg", "readv", "write", "sendto",
                                     "sendmsg", "writev", "epoll_wait", "epoll_pwait",
                                     "epoll_pwait2", "epoll_ctl")), reverse=True)
        print("| %s | %d | %.3f | %.3f | %.3f | %.3f | %d | %.2f | %s |" % (
            n, req, tot / req, rd / req, wr / req, ew / req, ec, ec / 100.0,
            ", ".join("%s %d" % (k, v) for v, k in other[:5])))

pf = [(c, n) for c in sorted({k[0] for k in rows} | set()) for n in names
      if os.path.exists(os.path.join(out, "perf.%s.c%d" % (n, c)))]
if pf:
    print()
    print("Steady state (perf stat, no strace; a window inside a wrk run): system calls per response written")
    print()
    print("| conns | server | syscalls/response | read | epoll waits | epoll_ctl |")
    print("|---|---|---|---|---|---|")
    for c, n in pf:
        cnt = {}
        for l in open(os.path.join(out, "perf.%s.c%d" % (n, c))):
            f = l.strip().split(",")
            if len(f) > 2 and f[0].isdigit():
                cnt[f[2].split(":")[-1]] = int(f[0])
        w = cnt.get("sys_enter_write", 0)
        if not w:
            continue
        waits = sum(cnt.get("sys_enter_" + k, 0) for k in ("epoll_wait", "epoll_pwait", "epoll_pwait2"))
        print("| %d | %s | %.3f | %.3f | %.3f | %.4f |" % (c, n, cnt.get("sys_enter", 0) / w,
              cnt.get("sys_enter_read", 0) / w, waits / w, cnt.get("sys_enter_epoll_ctl", 0) / w))
EOF
