#!/usr/bin/env python3
"""Writes the EXAMPLES program of every full page in doc/man3 to
OUTDIR/<page>.c, so CI can build and run each against the installed
library (doc/README.md: an example is a whole program that exits 0).
Usage: man_examples.py OUTDIR"""
import os
import re
import sys

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'doc')
# The roff escapes a C program needs, back to plain characters.
ESCAPES = [(r'\e', '\\'), (r'\(aq', "'"), (r'\(dq', '"'), (r'\(ga', '`'),
           (r'\-', '-'), (r'\&', ''), (r'\(ti', '~'), (r'\(ha', '^')]


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    os.makedirs(argv[1], exist_ok=True)
    man3 = os.path.join(DOC, 'man3')
    for f in sorted(os.listdir(man3)):
        text = open(os.path.join(man3, f)).read()
        ex = re.search(r'^\.SH EXAMPLES?\n(.*?)(^\.SH |\Z)', text, re.M | re.S)
        code = ex and re.search(r'^\.EX\n(.*?)^\.EE', ex.group(1), re.M | re.S)
        if not code or 'int main' not in code.group(1):
            continue
        src = code.group(1)
        for roff, c in ESCAPES:
            src = src.replace(roff, c)
        with open(os.path.join(argv[1], f[:-2] + '.c'), 'w') as out:
            out.write(src)
        print(f[:-2] + '.c')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
