#!/usr/bin/env python3
"""The collector idle over 20 files: its CPU share and memory, for one binary or several in
turn (needs Kafka: `deploy/local/stack up`).

Each binary runs `statmsg collect` over 20 copies of the head of a log (read once, from the
beginning), settles for 10 s, and is then measured for `STATMSG_BENCH_IDLE_S` seconds (default
60): CPU time over wall time from /proc/PID/stat, RSS from /proc/PID/status and its parts from
smaps_rollup (heap: anonymous; file pages: clean private and shared). With several binaries the
runs alternate, A B A B ..., for `STATMSG_BENCH_ROUNDS` rounds (default 3; 1 for one binary),
and each binary's median and spread (min to max) are printed, so that a shared machine's noise
falls on both alike.

Usage: bench.d/idle.py LOG LABEL=BINARY [LABEL=BINARY ...]
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BROKERS = os.environ.get("STATMSG_BENCH_KAFKA", "127.0.0.1:9092")
IDLE_S = float(os.environ.get("STATMSG_BENCH_IDLE_S", "60"))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def smaps(pid):
    parts = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        fields = line.split()
        if fields[0] in ("Anonymous:", "Private_Clean:", "Shared_Clean:"):
            parts[fields[0].rstrip(":")] = int(fields[1]) / 1024
    return parts


def idle(binary, head, topic):
    """One idle run of `binary`: (CPU share, RSS MB, heap MB, file pages MB)."""
    with tempfile.TemporaryDirectory() as d:
        logs = os.path.join(d, "logs")
        os.makedirs(logs)
        for i in range(20):
            with open(os.path.join(logs, f"Component{i:02}.log"), "wb") as f:
                f.write(head)
        config = os.path.join(d, "statmsg.toml")
        with open(config, "w") as f:
            f.write(
                f'hierarchy = "bench"\n[collect]\npaths = {json.dumps([logs + "/*.log", logs + "/*.lo_"])}\n'
                f'state_dir = "{d}/state"\nstart_at = "beginning"\nsite = "CS1"\n'
                f'[kafka]\nbrokers = "{BROKERS}"\ntopic = "{topic}"\npartitions = 1\n'
            )
        p = subprocess.Popen([binary, "collect", "--config", config], stderr=subprocess.DEVNULL)
        try:
            time.sleep(10)
            c0, t0 = cpu_seconds(p.pid), time.time()
            time.sleep(IDLE_S)
            c1, t1 = cpu_seconds(p.pid), time.time()
            parts = smaps(p.pid)
            return (c1 - c0) / (t1 - t0), rss_mb(p.pid), parts["Anonymous"], parts["Private_Clean"] + parts["Shared_Clean"]
        finally:
            p.terminate()
            p.wait()


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    log, binaries = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
    rounds = int(os.environ.get("STATMSG_BENCH_ROUNDS", "3" if len(binaries) > 1 else "1"))
    with open(log, "rb") as f:
        head = f.read(200_000)
    stamp = str(int(time.time()))
    results = {label: [] for label, _ in binaries}
    for r in range(rounds):
        for label, binary in binaries:
            share, rss, heap, pages = idle(binary, head, f"bench-idle-{stamp}-{r}-{label}")
            results[label].append((share, rss, heap, pages))
            print(f"round {r + 1} {label}: {100 * share:.3f} % of a core, RSS {rss:.2f} MB "
                  f"(heap {heap:.2f} MB, file pages {pages:.2f} MB)", flush=True)
    print(f"\nidle over 20 files, {IDLE_S:.0f} s each, {rounds} alternating rounds: median (min to max)")
    for label, runs in results.items():
        cols = list(zip(*runs))
        show = lambda values, scale, unit: (f"{scale * statistics.median(values):.3f}{unit} "
                                            f"({scale * min(values):.3f} to {scale * max(values):.3f})")
        print(f"{label}: CPU {show(cols[0], 100, ' %')}, RSS {show(cols[1], 1, ' MB')}, "
              f"heap {show(cols[2], 1, ' MB')}, file pages {show(cols[3], 1, ' MB')}")


if __name__ == "__main__":
    main()
