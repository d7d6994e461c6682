#!/usr/bin/env python3
"""Runs an example and checks its exit status and its whole stdout.

usage: expect.py PROGRAM EXPECTED_STDOUT"""
import subprocess
import sys

prog, expected = sys.argv[1], sys.argv[2]
r = subprocess.run([prog], stdout=subprocess.PIPE, text=True, timeout=60)
if r.returncode != 0 or r.stdout != expected:
    sys.stdout.write("exit status %d\n--- expected\n%s--- got\n%s"
                     % (r.returncode, expected, r.stdout))
    sys.exit(1)
