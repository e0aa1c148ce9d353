#!/usr/bin/env python3
"""Total instructions and inclusive cost of named functions in a callgrind dump.

    callgrind_calls.py FILE SUBSTRING...

prints `total N` and, per substring, `SUBSTRING calls C inclusive I`: summed
over every call site whose callee's name contains SUBSTRING (a callee that
calls itself, or one matched by two substrings, would be counted twice: the
names used by loadtest/cost.sh are neither). Used by loadtest/cost.sh to take
the snapshot refreshes out of a phase's per-call figure.
"""
import re
import sys


def main(path, needles):
    names = {}
    total = 0
    found = {n: [0, 0] for n in needles}
    pending = None  # the needles a cfn= line matched, until its calls= line
    calls = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(("summary:", "totals:")) and not total:
                total = int(line.split()[1])
            elif line.startswith("cfn="):
                m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    name = names.get(m.group(1), "")
                    pending = [n for n in needles if n in name]
            elif line.startswith("fn="):
                m = re.match(r"fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                if m and m.group(2):
                    names[m.group(1)] = m.group(2)
                pending = None
            elif line.startswith("calls=") and pending:
                calls = int(line.split("=")[1].split()[0])
            elif calls is not None and pending:
                cost = int(line.split()[1])
                for n in pending:
                    found[n][0] += calls
                    found[n][1] += cost
                pending, calls = None, None
    print(f"total {total}")
    for n in needles:
        print(f"{n} calls {found[n][0]} inclusive {found[n][1]}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
