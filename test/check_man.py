#!/usr/bin/env python3
"""Checks every manual page in doc/man3 and doc/man7 (meson test "man",
suite doc).  Usage: check_man.py [GROFF]

A page fails when
  - groff -man -t -ww -z prints anything (a warning or an error), at the
    80-column width lintian uses;
  - it is a full page whose .TH does not name the file, or that lacks a
    section doc/README.md requires, or whose NAME line does not list it;
  - it is a link page that is not exactly ".so man3/<page>.3" naming an
    existing full page whose NAME line lists the link's name;
  - it is not installed by doc/meson.build, or a man3 page is not linked
    from the overview, doc/man7/libcoro.7.
"""
import os
import re
import subprocess
import sys

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'doc')
SECTIONS = {
    '3': ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'RETURN VALUE', 'ERRORS',
          'EXAMPLES', 'SEE ALSO'],
    '7': ['NAME', 'DESCRIPTION', 'SEE ALSO'],
}
SO = re.compile(r'^\.so (man[37]/([\w.-]+)\.([37]))\n?$')


def name_line(text):
    """The names a page's NAME section lists (before the \\-)."""
    m = re.search(r'^\.SH NAME\n(.*?)\\-', text, re.M | re.S)
    return set(re.findall(r'[\w.-]+', m.group(1))) if m else set()


def check_page(rel, groff, errors):
    name, sect = os.path.basename(rel).rsplit('.', 1)
    text = open(os.path.join(DOC, rel)).read()
    if text.startswith('.so'):
        m = SO.match(text)
        target = m and os.path.join(DOC, m.group(1))
        if not m or not os.path.isfile(target) or open(target).read().startswith('.so'):
            errors.append(f'{rel}: a link page must be one line ".so man3/<full page>.3"')
        elif name not in name_line(open(target).read()):
            errors.append(f'{rel}: {m.group(1)} does not list {name} in its NAME line')
        return
    th = re.search(r'^\.TH (\S+) (\S+)', text, re.M)
    if not th or th.group(1) != name.upper() or th.group(2) != sect:
        errors.append(f'{rel}: needs ".TH {name.upper()} {sect} DATE libcoro '
                      f'\\"libcoro Manual\\""')
    found = [s.strip('"') for s in re.findall(r'^\.SH (.+)$', text, re.M)]
    want = SECTIONS[sect]
    if [s for s in found if s in want] != want:
        errors.append(f'{rel}: sections {found}; needs {want} in that order')
    if name not in name_line(text):
        errors.append(f'{rel}: the NAME line does not list {name}')
    r = subprocess.run([groff, '-man', '-t', '-ww', '-z', '-Tutf8', '-rLL=78n', rel],
                       cwd=DOC, capture_output=True, text=True)
    if r.returncode != 0 or r.stderr:
        errors.append(f'{rel}: groff says:\n{r.stderr.rstrip()}')


def main(argv):
    groff = argv[1] if len(argv) > 1 else 'groff'
    pages = []
    for d, ext in (('man3', '.3'), ('man7', '.7')):
        path = os.path.join(DOC, d)
        if os.path.isdir(path):
            pages += sorted(f'{d}/{f}' for f in os.listdir(path) if f.endswith(ext))
    errors = []
    for rel in pages:
        check_page(rel, groff, errors)

    build = open(os.path.join(DOC, 'meson.build')).read()
    listed = set(re.findall(r"'(man[37]/[^']+)'", build))
    for rel in pages:
        if rel not in listed:
            errors.append(f'{rel}: not listed in doc/meson.build')
    overview = open(os.path.join(DOC, 'man7', 'libcoro.7')).read()
    for rel in pages:
        name = os.path.basename(rel)[:-2]
        if rel.startswith('man3/') and f'.BR {name} (3)' not in overview:
            errors.append(f'{rel}: not linked from doc/man7/libcoro.7 '
                          f'(add ".BR {name} (3)," under "Manual pages")')
    for e in errors:
        print(e)
    if not errors:
        print(f'{len(pages)} manual pages clean')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
