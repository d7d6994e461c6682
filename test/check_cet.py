#!/usr/bin/env python3
"""The x86_64 switch does not switch shadow stacks, so nothing built from
it may claim shadow-stack support (SHSTK) in its GNU property note; under
-fcf-protection it must still claim indirect branch tracking (IBT), or the
linker drops IBT for the whole library.

usage: check_cet.py READELF PROBE [LIBRARY...]
  PROBE: the switch assembled with -fcf-protection: must say IBT, not SHSTK.
  LIBRARY: objects as built: none may say SHSTK (IBT where the build asked
  for it)."""
import subprocess
import sys


def features(readelf, path):
    out = subprocess.run([readelf, "-n", "--wide", path], check=True,
                         capture_output=True, text=True).stdout
    found = set()
    for line in out.splitlines():
        if "x86 feature:" in line:
            found |= {f.strip() for f in line.split("x86 feature:")[1].split(",")}
    return found


def main():
    readelf, probe, libs = sys.argv[1], sys.argv[2], sys.argv[3:]
    bad = []
    f = features(readelf, probe)
    if "IBT" not in f or "SHSTK" in f:
        bad.append(f"{probe}: x86 features {sorted(f)}, want IBT and not SHSTK")
    for lib in libs:
        f = features(readelf, lib)
        if "SHSTK" in f:
            bad.append(f"{lib}: x86 features {sorted(f)}, must not say SHSTK")
    for b in bad:
        print(b)
    if not bad:
        print("ok:", probe, *libs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
