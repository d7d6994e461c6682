#!/usr/bin/env python3
"""Checks that the library exports exactly the documented API.

    check_api.py LIBRARY            check (meson test "api", suite abi)
    check_api.py --update LIBRARY   rewrite debian/libcoro0.symbols
    check_api.py --version VERSION  check debian/changelog's version

LIBRARY is the built shared library (build/libcoro.so.0).  The check fails
unless the set of symbols `nm -D --defined-only LIBRARY` shows equals
  - the symbols listed in debian/libcoro0.symbols,
  - the names declared with CORO_API in include/coro.h,
and every one of them has a manual page doc/man3/<name>.3 (a full page or
a ".so" link page).  --update adds new symbols to the symbols file with
the project version from meson.build and drops the ones gone (removing a
symbol breaks the ABI: bump the soversion instead, unless it was never
released).
"""
import os
import re
import subprocess
import sys

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYMBOLS = os.path.join(SRC, 'debian', 'libcoro0.symbols')
HEADER = os.path.join(SRC, 'include', 'coro.h')
MAN3 = os.path.join(SRC, 'doc', 'man3')

# Defined by the linker, not by libcoro (older binutils export them).
LINKER_SYMBOLS = {'_init', '_fini', '_edata', '_end', '__bss_start'}


def exported(lib):
    out = subprocess.run(['nm', '-D', '--defined-only', lib], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            names.add(parts[2].split('@')[0])
    # AddressSanitizer gives each exported variable an ODR indicator,
    # __odr_asan.<name>: the compiler's, not part of the API.
    return {n for n in names - LINKER_SYMBOLS if not n.startswith('__odr_asan')}


def project_version():
    text = open(os.path.join(SRC, 'meson.build')).read()
    m = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", text, re.S)
    return m.group(1)


def read_symbols():
    """Returns (header lines, {symbol: version})."""
    head, syms = [], {}
    for line in open(SYMBOLS):
        m = re.match(r'^ (\S+)@Base (\S+)', line)
        if m:
            syms[m.group(1)] = m.group(2)
        elif line.strip():
            head.append(line.rstrip('\n'))
    return head, syms


def declared():
    """Names declared with CORO_API in the public header."""
    text = open(HEADER).read()
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    text = re.sub(r'//[^\n]*', ' ', text)
    text = re.sub(r'^\s*#.*$', ' ', text, flags=re.M)  # the macro itself
    text = re.sub(r'__attribute__\s*\(\(.*?\)\)', ' ', text, flags=re.S)
    names = set()
    for decl in re.findall(r'\bCORO_API\b([^;{]*)', text):
        funcs = [n for n in re.findall(r'(\w+)\s*\(', decl) if not n.isupper()]
        if funcs:
            names.add(funcs[0])
        else:
            m = re.search(r'(\w+)\s*(\[[^\]]*\]\s*)?(=.*)?$', decl.strip(), re.S)
            if m:
                names.add(m.group(1))
    return names


def check_version(version):
    first = open(os.path.join(SRC, 'debian', 'changelog')).readline()
    m = re.match(r'^\S+ \(([^)]+)\)', first)
    deb = m.group(1) if m else '?'
    if deb != version:
        print(f'debian/changelog says {deb}, meson.build says {version}: add a '
              f'changelog entry (dch -v {version}) or fix the project version')
        return 1
    print(f'debian/changelog and meson.build agree: {version}')
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == '--version':
        return check_version(argv[2])
    update = len(argv) == 3 and argv[1] == '--update'
    if len(argv) != 2 and not update:
        print(__doc__)
        return 2
    lib = argv[-1]
    exp = exported(lib)
    head, syms = read_symbols()

    if update:
        version = project_version()
        new = {s: syms.get(s, version) for s in exp}
        with open(SYMBOLS, 'w') as f:
            for line in head:
                f.write(line + '\n')
            for s in sorted(new):
                f.write(f' {s}@Base {new[s]}\n')
        for s in sorted(set(new) - set(syms)):
            print(f'added {s} ({version})')
        for s in sorted(set(syms) - set(new)):
            print(f'removed {s}: an ABI break if it was ever released')
        syms = new

    errors = []
    for s in sorted(exp - set(syms)):
        errors.append(f'{s}: exported but not in debian/libcoro0.symbols '
                      f'(run: test/check_api.py --update {lib})')
    for s in sorted(set(syms) - exp):
        errors.append(f'{s}: in debian/libcoro0.symbols but not exported')
    decl = declared()
    for s in sorted(exp - decl):
        errors.append(f'{s}: exported but not declared with CORO_API in '
                      f'include/coro.h (make it static or coro__ and hidden)')
    for s in sorted(decl - exp):
        errors.append(f'{s}: declared with CORO_API but not exported')
    for s in sorted(exp):
        if not os.path.exists(os.path.join(MAN3, s + '.3')):
            errors.append(f'{s}: no manual page doc/man3/{s}.3 (see doc/README.md)')
    for e in errors:
        print(e)
    if not errors:
        print(f'{len(exp)} exported symbols: declared, listed, documented')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
