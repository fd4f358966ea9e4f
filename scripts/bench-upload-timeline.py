#!/usr/bin/env python3
"""Where an upload's time goes: the parts medport had in flight to storage, over time.

Reads a medport log written with RUST_LOG=warn,medport=debug (every stored part logs
"part stored" with its part number and how long storing it took), splits it into uploads at
pauses of more than 3 s, and prints for each upload how long 0, 1, 2... parts were being
sent, with the spread of part times and the slow parts. Time with nothing in flight is time
the storage was not being fed.

  MEDPORT_BENCH_LOG=warn,medport=debug MEDPORT_BENCH_KEEP_LOG=/tmp/medport.log \\
      scripts/bench-upload.sh
  scripts/bench-upload-timeline.py /tmp/medport.log [--parts N]

--parts N also lists the first N parts of each upload (start, duration), to see them come
in batches or one by one.
"""
import argparse
import re
from datetime import datetime

PART = re.compile(r"^(\S+?)Z?\s+DEBUG .*part stored part=(\d+) bytes=(\d+) ms=(\d+)")
COLOUR = re.compile(r"\x1b\[[0-9;]*m")
PAUSE_S = 3.0


def parts_of(path):
    parts = []
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            m = PART.search(COLOUR.sub("", line))
            if not m:
                continue
            end = datetime.fromisoformat(m.group(1)).timestamp()
            took = int(m.group(4)) / 1000
            parts.append((end - took, end, int(m.group(2)), int(m.group(3))))
    return sorted(parts)


def uploads_of(parts):
    runs = []
    for part in parts:
        if runs and part[0] - max(p[1] for p in runs[-1]) <= PAUSE_S:
            runs[-1].append(part)
        else:
            runs.append([part])
    return runs


def in_flight_histogram(parts):
    """Seconds spent with exactly k parts being sent, for each k."""
    edges = sorted([(p[0], 1) for p in parts] + [(p[1], -1) for p in parts])
    spent, count, last = {}, 0, edges[0][0]
    for t, step in edges:
        spent[count] = spent.get(count, 0.0) + t - last
        count += step
        last = t
    return spent


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log")
    parser.add_argument("--parts", type=int, default=0)
    args = parser.parse_args()
    parts = parts_of(args.log)
    if not parts:
        raise SystemExit("no 'part stored' lines: run medport with RUST_LOG=warn,medport=debug")
    for n, upload in enumerate(uploads_of(parts), 1):
        start = upload[0][0]
        span = max(p[1] for p in upload) - start
        mib = sum(p[3] for p in upload) / (1 << 20)
        times = sorted(p[1] - p[0] for p in upload)
        median = times[len(times) // 2]
        spent = in_flight_histogram(upload)
        print(f"upload {n}: {len(upload)} parts, {mib:.0f} MiB in {span:.1f} s "
              f"({mib / span if span else 0:.1f} MiB/s)")
        print("  seconds with k parts in flight: " +
              ", ".join(f"{k}: {s:.2f}" for k, s in sorted(spent.items())))
        print(f"  part time: median {median:.3f} s, p90 {times[int(len(times) * 0.9)]:.3f} s, "
              f"max {times[-1]:.3f} s")
        slow = [(p[2], p[1] - p[0]) for p in upload if p[1] - p[0] > 3 * median]
        if slow:
            print(f"  slow parts (over 3x the median): {len(slow)}: " +
                  ", ".join(f"#{num} {took:.2f} s" for num, took in slow))
        for p in upload[: args.parts]:
            print(f"    part {p[2]:5d} starts {p[0] - start:7.3f} s, takes {p[1] - p[0]:.3f} s")


if __name__ == "__main__":
    main()
