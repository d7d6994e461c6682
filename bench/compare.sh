#!/bin/bash
# Compares two commits' speed: builds each commit's library (release, from
# `git archive`, in a temporary directory), builds the benchmark programs
# of this working tree (bench/*.c, bench/chan_go, bench/issue9_go) once
# against each library, runs them against both, interleaved (round 1: old
# then new, round 2: new then old, ...), and prints for every row the
# median over the rounds for each commit and new / old.
#
#   bench/compare.sh OLD NEW [--rounds N] [--scale F]
#
#   --rounds N   rounds (default 3); each runs every program once per commit
#   --scale F    counts of bench_spawn and bench_issue9 times F (default 1)
#
# Programs: bench_switch, bench_lifecycle, bench_chan (with Go),
# bench_spawn, bench_issue9 (with Go and fcontext).  Baseline rows (Go,
# fcontext, swapcontext) are the same code for both commits: their ratio
# shows how noisy the machine was.  Needs meson, a C compiler, python3;
# golang-go and libboost-context-dev for those baselines.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() { echo "usage: $0 OLD NEW [--rounds N] [--scale F]" >&2; exit 2; }
[ $# -ge 2 ] || usage
old=$1 new=$2
shift 2
rounds=3 scale=1
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) rounds=${2:?}; shift 2 ;;
    --scale) scale=${2:?}; shift 2 ;;
    *) usage ;;
    esac
done
repo=$(git -C "$here" rev-parse --show-toplevel)
tmp=$(mktemp -d /tmp/coro-compare.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cc=${CC:-cc}

fcontext=()
if echo 'int main(void) { return 0; }' | "$cc" -x c - -o "$tmp/probe" -lboost_context 2>/dev/null; then
    fcontext=(-DHAVE_FCONTEXT=1 -lboost_context)
fi

# build SIDE COMMIT: the library in $tmp/SIDE/build, the programs in
# $tmp/SIDE/bin.
build() {
    local side=$1 commit=$2 d=$tmp/$1 join=()
    mkdir -p "$d/src" "$d/bin"
    git -C "$repo" archive "$commit" | tar -xf - -C "$d/src"
    meson setup "$d/build" "$d/src" -Dbuildtype=release -Dwerror=false -Dtests=false \
        -Dexamples=false -Dbenchmarks=false >"$d/setup.log" 2>&1 ||
        { cat "$d/setup.log"; return 1; }
    meson compile -C "$d/build" >"$d/compile.log" 2>&1 || { cat "$d/compile.log"; return 1; }
    if printf '#include <coro.h>\nint f(coro_t *c) { return coro_join(c, 0, -1); }\n' |
            "$cc" -fsyntax-only -I"$d/src/include" -x c - 2>/dev/null; then
        join=(-DBENCH_JOIN_DEADLINE=1)
    fi
    for p in switch lifecycle chan spawn issue9; do
        "$cc" -O2 -std=gnu11 -I"$d/src/include" -I"$here" ${join[@]+"${join[@]}"} \
            "$here/$p.c" -o "$d/bin/bench_$p" -L"$d/build" -lcoro -Wl,-rpath,"$d/build" \
            ${fcontext[@]+"${fcontext[@]}"} -lm
    done
    echo "$side: $(git -C "$repo" log -1 --format='%h %s' "$commit" | cut -c1-70)"
}
build old "$old"
build new "$new"

go_args_chan=() go_args_issue9=()
if command -v go >/dev/null 2>&1; then
    for g in chan_go issue9_go; do
        (cd "$here/$g" && GOFLAGS=-mod=mod GOCACHE="$tmp/gocache" GOPATH="$tmp/gopath" \
            go build -o "$tmp/$g" .)
    done
    go_args_chan=(--go "$tmp/chan_go")
    go_args_issue9=(--go "$tmp/issue9_go")
else
    echo "go not found: no Go baselines" >&2
fi
spawn_n=$(python3 -c "print(max(1000, int(1000000 * $scale)))")

# run SIDE ROUND: every program once, outputs in $tmp/out/ROUND.SIDE.PROG
run() {
    local b=$tmp/$1/bin o=$tmp/out/$2.$1
    "$b/bench_switch" 1000000 5 >"$o.switch"
    "$b/bench_lifecycle" 500000 5 >"$o.lifecycle"
    "$b/bench_chan" 1000000 5 ${go_args_chan[@]+"${go_args_chan[@]}"} >"$o.chan"
    "$b/bench_spawn" "$spawn_n" 1 >"$o.spawn"
    "$b/bench_issue9" --runs 1 --scale "$scale" \
        ${go_args_issue9[@]+"${go_args_issue9[@]}"} >"$o.issue9"
}
mkdir -p "$tmp/out"
for ((r = 1; r <= rounds; r++)); do
    echo "round $r of $rounds" >&2
    if ((r % 2)); then run old "$r"; run new "$r"; else run new "$r"; run old "$r"; fi
done

echo "old: $(git -C "$repo" rev-parse --short "$old"), new: $(git -C "$repo" rev-parse --short "$new")"
python3 - "$tmp/out" "$rounds" <<'EOF'
# Reads every table of every output: a header of '|' lines up to a '|---'
# line, then rows.  A row's label is its first cell (the last non-empty
# one for bench_issue9's continuation rows, plus the impl column); its
# values are the numeric cells of the columns that are not min, max,
# ranges, totals or ratios.
import os, re, statistics, sys

out, rounds = sys.argv[1], int(sys.argv[2])
num = re.compile(r'^\s*(-?[0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$')
skip = ('min', 'max', 'vs', 'total', 'ratio', 'libcoro')

def tables(path):
    lines = open(path).read().split('\n')
    res, title, para, i, t = [], '', True, 0, 0
    while i < len(lines):
        l = lines[i]
        if not l.startswith('|'):
            # The title: the first line of the paragraph before the table.
            if l.strip() and para:
                title = l.strip()
            para = not l.strip()
            i += 1
            continue
        para = False
        head = []
        while i < len(lines) and lines[i].startswith('|') and not lines[i].startswith('|-'):
            head.append([c.strip() for c in lines[i].strip('|').split('|')])
            i += 1
        i += 1
        cols = [' '.join(h[k] for h in head if k < len(h)).strip() for k in range(len(head[0]))]
        t += 1
        label0 = ''
        while i < len(lines) and lines[i].startswith('|'):
            cells = [c.strip() for c in lines[i].strip('|').split('|')]
            i += 1
            if cells[0]:
                label0 = cells[0]
            label = label0
            if len(cols) > 1 and cols[1] == 'impl':
                label += ' / ' + cells[1]
            for k in range(1, len(cells)):
                name = cols[k] if k < len(cols) else str(k)
                m = num.match(cells[k])
                if not m or name == 'impl' or any(s in name.split() for s in skip):
                    continue
                if m.group(2) and m.group(2) not in name.split():
                    name += ' ' + m.group(2)
                res.append(((title[:90], t), label, name, float(m.group(1))))
    return res

data = {}   # (prog, table, label, col) -> {side: [values]}
order = []
for f in sorted(os.listdir(out)):
    r, side, prog = f.split('.')
    for (title, t), label, col, v in tables(os.path.join(out, f)):
        key = (prog, t, title, label, col)
        if key not in data:
            data[key] = {'old': [], 'new': []}
            order.append(key)
        data[key][side].append(v)

progs = ['switch', 'lifecycle', 'chan', 'spawn', 'issue9']
order.sort(key=lambda k: (progs.index(k[0]), k[1]))
print(f'medians of {rounds} rounds; new / old < 1 is faster (or smaller)')
for l in open('/proc/cpuinfo'):
    if l.startswith('model name'):
        print(l.split(':', 1)[1].strip(), f'({os.cpu_count()} CPUs)')
        break
last = None
for key in order:
    prog, t, title, label, col = key
    if (prog, t) != last:
        print(f'\nbench_{prog}: {title}\n')
        print(f'| {"row":<46} | {"column":<16} | {"old":>10} | {"new":>10} | {"new/old":>7} |')
        print(f'|{"-" * 48}|{"-" * 18}|{"-" * 12}|{"-" * 12}|{"-" * 9}|')
        last = (prog, t)
    o, n = data[key]['old'], data[key]['new']
    if not o or not n:
        continue
    mo, mn = statistics.median(o), statistics.median(n)
    ratio = f'{mn / mo:7.3f}' if mo else '    n/a'
    print(f'| {label[:46]:<46} | {col[:16]:<16} | {mo:10.1f} | {mn:10.1f} | {ratio} |')
EOF
