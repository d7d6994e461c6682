#!/usr/bin/env python3
"""The gdb extension's test: runs gdb in batch mode on test/gdb/victim.c's
program, live and on core files, and checks what "info coroutines",
"coro bt" and "coro apply all bt" print.

Usage: run.py GDB SCRIPT VICTIM VICTIM_STATIC LIBCORO SANITIZE
  SCRIPT         the extension, named as gdb auto-loads it, next to LIBCORO
  VICTIM         the victim linked with the shared library (guards from
                 MADV_GUARD_INSTALL where the kernel has it)
  VICTIM_STATIC  the victim linked with the static library, mprotect guards
  LIBCORO        the shared library the victim loads
  SANITIZE       the build's b_sanitize: with a sanitizer, no core is
                 made (a sanitized process maps terabytes, and gcore would
                 write them out): the live sessions only

Sessions:
  live      script sourced twice; every command, then "coro gcore"
  core      the same commands on that core file
  static    the static victim: live, then plain gcore, then its core
  autoload  the script found by gdb next to the library (safe-path /)
  stripped  the victim run on a copy of the library stripped of .symtab
            and debug info: only the dynamic symbol coro_debug_root is left
  overflow  the victim overflows a coroutine's stack

   or: run.py --remote QEMU SYSROOT GDB SCRIPT VICTIM LIBDIR
  remote    a cross-built victim (aarch64) under qemu-user, debugged live
            through qemu's gdb stub with gdb-multiarch
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

REMOTE = sys.argv[1:2] == ["--remote"]
if REMOTE:
    # run.py --remote QEMU SYSROOT GDB SCRIPT VICTIM LIBDIR: a cross-built
    # victim under qemu-user, debugged through qemu's gdb stub (live only).
    QEMU, SYSROOT, GDB, SCRIPT, VICTIM, LIBDIR = sys.argv[2:8]
else:
    GDB, SCRIPT, VICTIM, VICTIM_STATIC, LIBCORO, SANITIZE = sys.argv[1:7]
    CORES = SANITIZE == "none"

failures = []


def check(cond, what, text=""):
    if not cond:
        failures.append(what)
        print("FAIL: %s" % what)
        if text:
            print("---- output ----\n%s\n----------------" % text)


def gdb(args, commands, source=2, env=None, init=()):
    """Runs gdb -batch; returns {command: its output} and the whole output.
    The script is sourced `source` times first."""
    cmd = [GDB, "-batch", "-nx", "-iex", "set pagination off",
           "-iex", "set width 0", "-iex", "set confirm off"]
    for i in init:
        cmd += ["-iex", i]
    for _ in range(source):
        cmd += ["-ex", "source " + SCRIPT]
    for c in commands:
        cmd += ["-ex", "echo @@@ %s\\n" % c, "-ex", c]
    cmd += ["-ex", "echo @@@ end\\n"]
    p = subprocess.run(cmd + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, env=env, timeout=180)
    out = p.stdout
    parts = {}
    for chunk in out.split("@@@ ")[1:]:
        head, _, body = chunk.partition("\n")
        parts[head] = body
    return parts, out


def frames(text):
    """Function names of the frames of a backtrace, and their numbers."""
    names, numbers = [], []
    for line in text.splitlines():
        m = re.match(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(\S+) \(", line)
        if m:
            numbers.append(int(m.group(1)))
            names.append(m.group(2))
    return names, numbers


def has_run(names, run):
    """True if the names in run appear in names consecutively."""
    for i in range(len(names) - len(run) + 1):
        if names[i:i + len(run)] == run:
            return True
    return False


# What each coroutine looks like: state, and the run of frames its backtrace
# must contain (None: no frames, a sentence about its state).
EXPECTED = {
    "alpha": ("suspended", ["alpha_leaf", "alpha_mid", "alpha_top"], "alpha_leaf"),
    "beta": ("suspended", ["beta_leaf", "beta_top"], "beta_leaf"),
    "gamma": ("ready", None, "not started: gamma_top"),
    "delta": ("finished", None, "returned from delta_top"),
    "outer": ("normal", ["outer_top"], "outer_top"),
    "inner": ("running", ["victim_ready", "inner_leaf", "inner_top"],
              "running in thread 1: victim_ready"),
    "worker": ("running", ["worker_block", "worker_top"], "running in thread 2: "),
}


def parse_info(text):
    """name -> (mark, id, state, where) from "info coroutines"."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^([* ]) (\d+)\s+(\S+)\s+(\S+)\s+(.*)$", line)
        if m:
            rows[m.group(3)] = (m.group(1), int(m.group(2)), m.group(4), m.group(5))
    return rows


def check_session(label, parts, whole, ids=None, stripped=False):
    """Checks the output of the standard commands (see COMMANDS)."""
    info = parts.get("info coroutines", "")
    rows = parse_info(info)
    check(set(rows) == set(EXPECTED), "%s: info coroutines lists %s"
          % (label, sorted(EXPECTED)), info)
    for name, (state, run, where) in EXPECTED.items():
        if name not in rows:
            continue
        mark, _, got_state, got_where = rows[name]
        check(got_state == state, "%s: %s is %s" % (label, name, state), info)
        check(got_where.startswith(where),
              "%s: %s is shown at %s" % (label, name, where), info)
        if where.startswith("alpha_leaf") and not stripped:
            check("victim.c:" in got_where, "%s: alpha's line is shown" % label, info)
        check((mark == "*") == (name == "inner"),
              "%s: only inner is marked current" % label, info)
    if ids is not None:
        check({n: r[1] for n, r in rows.items()} == ids,
              "%s: the ids are the live session's" % label, info)
    for name, (state, run, _) in EXPECTED.items():
        if name not in rows:
            continue
        text = parts.get("coro bt %d" % rows[name][1], "")
        names, numbers = frames(text)
        if run is None:
            word = "not started" if state == "ready" else "finished"
            check(word in text and not names,
                  "%s: coro bt of %s says it has %s" % (label, name, word), text)
            continue
        check(has_run(names, run), "%s: coro bt of %s shows %s"
              % (label, name, " <- ".join(run)), text)
        check(numbers == list(range(len(numbers))),
              "%s: coro bt of %s numbers frames from 0" % (label, name), text)
        if state != "running":
            check("main" not in names and "victim_ready" not in names,
                  "%s: coro bt of %s shows no frame of the thread" % (label, name), text)
    text = parts.get("coro bt 1 full", "")
    check("alpha_leaf (x=40)" in text and "No locals." in text,
          "%s: coro bt 1 full shows alpha_leaf's argument" % label, text)
    text = parts.get("coro bt 1 1", "")
    check(frames(text)[0] and frames(text)[0][-1] != "alpha_top" and
          len(frames(text)[0]) <= 3, "%s: coro bt ID COUNT limits the frames" % label, text)
    # Every coroutine's backtrace in one go, in id order.
    text = parts.get("coro apply all bt", "")
    heads = re.findall(r'^Coroutine (\d+) "(\w+)" \((\w+)\):$', text, re.M)
    check([h[1] for h in heads] == sorted(rows, key=lambda n: rows[n][1]),
          "%s: coro apply all bt has a section per coroutine" % label, text)
    for section in re.split(r"^Coroutine \d+ \"", text, flags=re.M)[1:]:
        name = section.split('"', 1)[0]
        run = EXPECTED.get(name, (None, None))[1]
        if run:
            check(has_run(frames(section)[0], run),
                  "%s: coro apply all bt shows %s's frames" % (label, name), section)
    # The thread's own frames are back after all this.
    names, _ = frames(parts.get("bt", ""))
    check(names[:3] == ["victim_ready", "inner_leaf", "inner_top"],
          "%s: bt of the thread is untouched afterwards" % label, parts.get("bt", ""))
    text = parts.get("coro apply 1 2 p $pc", "")
    check(re.search(r"<alpha_leaf\+\d+>(.|\n)*<beta_leaf\+\d+>", text),
          "%s: coro apply runs a command in each coroutine" % label, text)
    check("no live coroutine" in parts.get("coro bt 999", ""),
          "%s: coro bt of an unknown id is an error" % label, parts.get("coro bt 999", ""))
    check("Traceback" not in whole and "Python Exception" not in whole,
          "%s: no Python exception" % label, whole)


SELECT = ["coro select 1", "where", "up", "coro bt 2 full", "backtrace",
          "coro select", "bt 1", "coro select 7"]


def check_select(label, parts, whole):
    """coro select: a coroutine's frames stay selected until said."""
    text = parts.get("coro select 1", "")
    check('[Coroutine 1 "alpha" selected]' in text and "alpha_leaf" in text,
          "%s: coro select selects alpha_leaf's frame" % label, text)
    names, numbers = frames(parts.get("where", ""))
    check(has_run(names, ["alpha_leaf", "alpha_mid", "alpha_top"]) and numbers[:1] == [1]
          and "victim_ready" not in names,
          "%s: bt after coro select shows the coroutine's frames" % label, whole)
    check("alpha_mid" in parts.get("up", ""), "%s: up goes to alpha_mid" % label, whole)
    check(has_run(frames(parts.get("coro bt 2 full", ""))[0], ["beta_leaf", "beta_top"]),
          "%s: coro bt of another coroutine while one is selected" % label, whole)
    check("alpha_leaf" in frames(parts.get("backtrace", ""))[0],
          "%s: the selection outlives coro bt" % label, whole)
    check(frames(parts.get("bt 1", ""))[0] == ["victim_ready"],
          "%s: coro select alone gives the thread its frames back" % label, whole)
    check("is running" in parts.get("coro select 7", ""),
          "%s: a running coroutine cannot be selected" % label, whole)


COMMANDS = ["info coroutines"] + ["coro bt %d" % i for i in (1, 2, 3, 4, 6, 7, 1025)] + [
    "coro bt 1 full", "coro bt 1 1", "coro apply all bt", "coro apply 1 2 p $pc",
    "coro bt 999", "bt"]



def remote():
    """The live session, on a cross-built victim under qemu-user."""
    with socket.socket() as sock:   # a free port for qemu's gdb stub
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    qemu = subprocess.Popen([QEMU, "-L", SYSROOT, "-g", str(port), VICTIM],
                            stdout=subprocess.DEVNULL)
    try:
        # gdb retries the connection until qemu listens (tcp auto-retry).
        parts, whole = gdb([], ["set sysroot " + SYSROOT,
                                "set solib-search-path " + LIBDIR,
                                "file " + VICTIM, "target remote :%d" % port,
                                "source " + SCRIPT, "break victim_ready",
                                "continue"] + COMMANDS + ["kill"], source=0)
        check_session("remote", parts, whole)
    finally:
        qemu.kill()
        qemu.wait()


def native():
    tmp = tempfile.mkdtemp(prefix="coro-gdb-")
    try:
        native_sessions(tmp)
    finally:
        shutil.rmtree(tmp)


def native_sessions(tmp):
    # live, then the core "coro gcore" made of it
    core = os.path.join(tmp, "core.shared")
    parts, whole = gdb([VICTIM], ["break victim_ready", "run"] + COMMANDS + SELECT +
                       (["coro gcore " + core] if CORES else []) + ["kill"])
    check_session("live", parts, whole)
    check_select("live", parts, whole)
    ids = {n: r[1] for n, r in parse_info(parts.get("info coroutines", "")).items()}
    check(whole.count("  Id ") == 1 and "Error" not in whole.split("@@@")[0],
          "loading the script twice is harmless", whole)
    if CORES:
        check(os.path.exists(core) and "Wrote " in parts.get("coro gcore " + core, ""),
              "coro gcore writes a core", parts.get("coro gcore " + core, ""))
        parts, whole = gdb([VICTIM, core], COMMANDS + SELECT + ["source " + SCRIPT])
        check_session("core", parts, whole, ids)
        check_select("core", parts, whole)
        os.unlink(core)
    else:
        print("built with -Db_sanitize=%s: no core files" % SANITIZE)

    # the static victim, mprotect guards: plain gcore is enough
    core = os.path.join(tmp, "core.static")
    parts, whole = gdb([VICTIM_STATIC], ["break victim_ready", "run"] + COMMANDS +
                       (["gcore " + core] if CORES else []) + ["kill"], source=1)
    check_session("static live", parts, whole, ids)
    if CORES:
        parts, whole = gdb([VICTIM_STATIC, core], COMMANDS, source=1)
        check_session("static core", parts, whole, ids)
        os.unlink(core)

    # auto-loaded from the library's directory
    parts, whole = gdb([VICTIM], ["break victim_ready", "run"] + COMMANDS + ["kill"],
                       source=0, init=["set auto-load safe-path /"])
    check_session("autoload", parts, whole, ids)

    # a stack overflow: the thread stops in the guard of deep's stack
    parts, whole = gdb([VICTIM], ["run overflow", "info coroutines", "coro bt 6 3",
                                  "kill"], source=1)
    rows = parse_info(parts.get("info coroutines", ""))
    check("SIGSEGV" in parts.get("run overflow", ""), "overflow: the victim faults", whole)
    check(rows.get("deep", ("", 0, "", ""))[0] == "*" and rows["deep"][1] == 6 and
          rows["deep"][3].startswith("running in thread 1: deep"),
          "overflow: deep is the running coroutine, in deep()", whole)
    check(frames(parts.get("coro bt 6 3", ""))[0] == ["deep"] * 3,
          "overflow: coro bt shows the recursion", whole)

    # a plain gcore: where the stacks' guards sit inside their mapping
    # (MADV_GUARD_INSTALL, Linux 6.13 on) it has none of the stacks, and
    # the commands say so instead of walking zeros; otherwise they walk them
    if CORES:
        core = os.path.join(tmp, "core.plain")
        gdb([VICTIM], ["break victim_ready", "run", "gcore " + core, "kill"], source=1)
        parts, whole = gdb([VICTIM, core], ["info coroutines", "coro bt 1"], source=1)
        info = parts.get("info coroutines", "")
        rows = parse_info(info)
        lost = [name for name, row in rows.items() if row[3].startswith("? (its stack is not")]
        m = re.search(r"^(\d+) coroutine stacks? (?:is|are) not in this core file", info, re.M)
        check(len(lost) == (int(m.group(1)) if m else 0),
              "plain gcore: the count of missing stacks matches the rows", whole)
        bt = parts.get("coro bt 1", "")
        if "alpha" in lost:
            check("not in this core file" in bt, "plain gcore: coro bt says the stack is missing",
                  whole)
        else:
            check(frames(bt)[0][:3] == ["alpha_leaf", "alpha_mid", "alpha_top"],
                  "plain gcore: coro bt walks alpha", whole)
        os.unlink(core)

    # then the report runs on its own stack and aborts: no thread's
    # registers lead into deep's stack, the fault's kept in its context do,
    # live at the abort and in a core of it ("coro gcore": plain gcore skips
    # stacks whose guards sit inside their mapping)
    if CORES:  # a sanitizer takes the fault before the report does
        core = os.path.join(tmp, "core.overflow")
        ovf = ["info coroutines", "coro bt 6 3", "coro apply 6 bt 2"]
        parts, whole = gdb([VICTIM], ["run overflow", "continue"] + ovf +
                           ["coro gcore " + core, "kill"], source=1)
        check("SIGABRT" in parts.get("continue", ""), "overflow: the report aborts", whole)
        sessions = [("live", parts, whole)]
        parts, whole = gdb([VICTIM, core], ovf, source=1)
        sessions.append(("core", parts, whole))
        for label, parts, whole in sessions:
            rows = parse_info(parts.get("info coroutines", ""))
            check(rows.get("deep", ("", 0, "", ""))[3].startswith("overflowed its stack in deep"),
                  "overflow %s: info coroutines says deep overflowed, in deep()" % label, whole)
            bt = parts.get("coro bt 6 3", "")
            check(bt.startswith("Coroutine 6 overflowed its stack") and
                  frames(bt)[0] == ["deep"] * 3,
                  "overflow %s: coro bt walks the overflowed stack" % label, whole)
            check(frames(parts.get("coro apply 6 bt 2", ""))[0] == ["deep"] * 2,
                  "overflow %s: coro apply reaches it too" % label, whole)
        if os.path.exists(core):
            os.unlink(core)

    # a stripped copy of the library: no .symtab, no debug info
    libdir = os.path.join(tmp, "lib")
    os.mkdir(libdir)
    real = os.path.join(libdir, os.path.basename(os.path.realpath(LIBCORO)))
    shutil.copy(os.path.realpath(LIBCORO), real)
    subprocess.run(["strip", "--strip-all", real], check=True)
    soname = re.sub(r"^(libcoro\.so\.\d+).*$", r"\1", os.path.basename(real))
    os.symlink(os.path.basename(real), os.path.join(libdir, soname))
    parts, whole = gdb([VICTIM], ["set environment LD_LIBRARY_PATH " + libdir,
                                  "break victim_ready", "run", "info sharedlibrary",
                                  "p coro__npools"] + COMMANDS + ["kill"], source=1)
    check(libdir in parts.get("info sharedlibrary", ""),
          "stripped: the victim runs on the stripped copy", whole)
    check("No symbol" in parts.get("p coro__npools", ""),
          "stripped: the copy has no internal symbols", parts.get("p coro__npools", ""))
    check_session("stripped", parts, whole, ids, stripped=True)


if REMOTE:
    remote()
else:
    native()

if failures:
    print("%d checks failed" % len(failures))
    sys.exit(1)
print("all gdb checks passed")
