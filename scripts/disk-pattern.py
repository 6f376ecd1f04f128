#!/usr/bin/env python3
"""What this machine's disk charges for where a commit's pages land.

An LMDB commit writes its dirty pages, then flushes them with fdatasync. Where those pages lie
in the file decides the flush's cost on many virtual disks: pages side by side go out as one
request, scattered pages as one request each. This probe times the same number of 4 KiB pages
written and flushed three ways in a file as large as a 1M-instance store:

  sequential  one run of PAGES pages at a random place;
  clustered   PAGES pages at random among the 4 * PAGES pages of a random window;
  scattered   PAGES pages at random anywhere in the file.

It prints one JSON line with the median milliseconds per commit of each (spec/storage.md
section 4.1 gives the figures measured with it and why they matter).

  scripts/disk-pattern.py [DIR]     # the file goes in a fresh folder under DIR (default: the
                                    # system's temporary folder) and is removed afterwards

Cost: writes a 400 MiB file, then ~1,200 flushes; about 10-30 s on the project's VM.
"""
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

PAGE = 4096
PAGES = 283  # pages one 1,000-instance commit wrote at 1M instances (round 22)
FILE_PAGES = 400 * 256  # 400 MiB, about the data file of 1M instances
ROUNDS = 8
COMMITS = 25  # commits per pattern per round


def main():
    parent = sys.argv[1] if len(sys.argv) > 1 else None
    folder = tempfile.mkdtemp(prefix="disk-pattern-", dir=parent)
    rng = random.Random(1)
    try:
        path = os.path.join(folder, "f")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        block = os.urandom(1 << 20)
        for i in range(FILE_PAGES * PAGE // len(block)):
            os.pwrite(fd, block, i * len(block))
        os.fsync(fd)
        page = os.urandom(PAGE)
        run = page * PAGES

        def sequential():
            os.pwrite(fd, run, rng.randrange(FILE_PAGES - PAGES) * PAGE)

        def clustered():
            base = rng.randrange(FILE_PAGES - 4 * PAGES)
            for p in sorted(rng.sample(range(base, base + 4 * PAGES), PAGES)):
                os.pwrite(fd, page, p * PAGE)

        def scattered():
            for p in sorted(rng.sample(range(FILE_PAGES), PAGES)):
                os.pwrite(fd, page, p * PAGE)

        patterns = {"sequential": sequential, "clustered": clustered, "scattered": scattered}
        times = {name: [] for name in patterns}
        # Rounds alternate the patterns, so that the disk's drift hits all alike.
        for _ in range(ROUNDS):
            for name, write in patterns.items():
                started = time.perf_counter()
                for _ in range(COMMITS):
                    write()
                    os.fdatasync(fd)
                times[name].append((time.perf_counter() - started) * 1e3 / COMMITS)
        os.close(fd)
        line = {"bench": "disk_pattern", "pages_per_commit": PAGES, "file_mib": FILE_PAGES // 256}
        for name, ms in times.items():
            line[f"{name}_ms"] = round(statistics.median(ms), 2)
        line["scattered_over_sequential"] = round(line["scattered_ms"] / line["sequential_ms"], 1)
        print(json.dumps(line))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
