#!/usr/bin/env python3
"""`./bench consume`: the consumer draining a backlog into the real InfluxDB, against InfluxDB
taking the same points straight, in the same run (needs `deploy/local/stack up`).

1. `statmsg simulate --sites 50 --days 120` (written once, cached), collected into a fresh
   6-partition topic by one `statmsg collect` per site (as on a fleet: bundles of records, one
   message each); waits until the topic holds every record of the files and stops growing.
2. For 1, 2 and 3 consumers in one fresh group each, with a fresh database and state topic:
   time from start to the moment every consumer logged "caught up" (every assigned partition
   read to its end and stored). As in a deployment, the topics and the database exist before
   the clock starts (`statmsg kafka setup`, `statmsg influx setup`), as the database of the
   straight posting does. Points are counted per measurement and must be equal across
   runs.
   Then two consumers, one killed (SIGKILL) mid-drain: the survivor must store the same points.
3. The points of the first run exported back from InfluxDB as line protocol and posted to a
   fresh database the way a good client would (bodies of 5,000 points, gzip, 4 in flight):
   InfluxDB's own pace. Prints both times and the ratio.

Both times vary from run to run by a quarter on the 2 cores the consumer, Kafka and InfluxDB
share, so the single consumer's drain and the straight posting are each repeated
(STATMSG_BENCH_REPEAT, default 3, alternately) and their medians compared. The CPU time each
process spent (consumer, influxd, Kafka; from /proc) is printed too: their sum over the cores
is the least time a drain can take on this machine.

Usage: bench.d/consume.py STATMSG_BINARY [consumers ...]   (default: 1 2 3)
"""

import concurrent.futures
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

BROKERS = os.environ.get("STATMSG_BENCH_KAFKA", "127.0.0.1:9092")
INFLUX = os.environ.get("STATMSG_BENCH_INFLUXDB", "http://127.0.0.1:8086")
SITES = int(os.environ.get("STATMSG_BENCH_SITES", "50"))
DAYS = int(os.environ.get("STATMSG_BENCH_DAYS", "120"))
PARTITIONS = 6
POINTS_PER_BODY = 5000
IN_FLIGHT = 4
REPEAT = int(os.environ.get("STATMSG_BENCH_REPEAT", "3"))


def influx(query, db=None, method="GET"):
    params = {"q": query, "epoch": "ns"}
    if db:
        params["db"] = db
    url = f"{INFLUX}/query?{urllib.parse.urlencode(params)}"
    data = None if method == "GET" else b""
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method)) as r:
        return json.load(r)


def series(result):
    for statement in result.get("results", []):
        if "error" in statement:
            raise RuntimeError(statement["error"])
        yield from statement.get("series", [])


# Heartbeat points (the short retention policy, and their hourly downsampling): a time series
# of the consumers' clock, not of the backlog.
HEARTBEATS = {"site_sync_state", "site_alert", "collector_status", "site_sync_state_1h", "collector_status_1h"}


def counts(db):
    """Points per measurement of the backlog (counting rows, whatever their fields)."""
    out = {}
    for s in series(influx("SHOW MEASUREMENTS", db)):
        for (m,) in s["values"]:
            if m in HEARTBEATS:
                continue
            rows = 0
            for t in series(influx(f'SELECT * FROM "{m}"', db)):
                rows += len(t["values"])
            out[m] = rows
    return out


def end_offsets(topic):
    total = 0
    for p in range(PARTITIONS):
        out = subprocess.run(["kcat", "-b", BROKERS, "-Q", "-t", f"{topic}:{p}:-1"],
                             capture_output=True, text=True).stdout
        try:
            total += int(out.split()[-1])
        except (IndexError, ValueError):
            pass
    return total


def config(d, name, topic, group, db, extra=""):
    path = os.path.join(d, f"{name}.toml")
    with open(path, "w") as f:
        f.write(f"""hierarchy = "bench"
{extra}
[kafka]
brokers = "{BROKERS}"
topic = "{topic}"
dead_letter_topic = "{topic}.dead-letter"
state_topic = "{group}.tracker-state"
group_id = "{group}"
partitions = {PARTITIONS}
[consume]
# Rows a consumer learns from another one's tracker state come with its next heartbeat.
heartbeat_s = 2
[influxdb]
url = "{INFLUX}"
database = "{db}"
""")
    return path


def collect(binary, sim, d, topic):
    """One collector per site folder, all at once, until the topic holds every record of the
    files (`statmsg parse --stats` counts them) and stops growing."""
    root = os.path.join(sim, "bench")
    sites = sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e)))
    files = [os.path.join(root, s, f) for s in sites for f in sorted(os.listdir(os.path.join(root, s)))
             if f.endswith((".log", ".lo_"))]
    stats = subprocess.run([binary, "parse", "--stats", *files], capture_output=True, text=True, check=True)
    expected = int(stats.stdout.split()[0])
    procs, logs = [], []
    # The topic made first, as in a deployment: collectors that find it made by another a moment
    # earlier would meet "not leader" answers and wait out retries.
    set_up_topics = config(d, "collect-setup", topic, "unused", "unused")
    subprocess.run([binary, "kafka", "setup", "--config", set_up_topics], check=True, stdout=subprocess.DEVNULL)
    for site in sites:
        folder = os.path.join(root, site)
        extra = f"""[collect]
paths = ["{folder}/*.log", "{folder}/*.lo_"]
state_dir = "{d}/state-{site}"
start_at = "beginning"
site = "{site}"
"""
        path = config(d, f"collect-{site}", topic, "unused", "unused", extra)
        logs.append(open(os.path.join(d, f"collect-{site}.log"), "w"))
        procs.append(subprocess.Popen([binary, "collect", "--config", path],
                                      stdout=subprocess.DEVNULL, stderr=logs[-1]))
    deadline = time.time() + 300
    last, stable, records = -1, 0, 0
    while True:
        time.sleep(0.5)
        n = end_offsets(topic)
        stable = stable + 1 if n == last and n > 0 else 0
        last = n
        if stable >= 6:
            # Quiet for 3 s: done if every record is there (a collector may be waiting out a
            # retry after the new topic's first "not leader" answers).
            records = records_in(topic)
            if records >= expected:
                break
            stable = 0
        if time.time() > deadline:
            for site, log in zip(sites, logs):
                log.flush()
                tail = open(log.name).read().splitlines()[-5:]
                sys.stderr.write(f"--- collector {site}\n" + "\n".join(tail) + "\n")
            raise SystemExit(f"the collectors published {records:,} of the {expected:,} records of the files")
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()
    for log in logs:
        log.close()
    return len(sites), last, records


def records_in(topic):
    """Records in `topic`: a collector sends bundles of records, heartbeats aside."""
    out = subprocess.run(["kcat", "-b", BROKERS, "-C", "-t", topic, "-e", "-q", "-f", "%s\n"],
                         capture_output=True, text=True, check=True).stdout
    seen = set()
    for line in out.splitlines():
        bundle = json.loads(line) if line else {}
        # Distinct records (a retried publish may have sent some twice).
        seen.update((bundle["path"], r["offset"]) for r in bundle.get("records", []))
    return len(seen)


def cpu_ticks(pid):
    """User and system CPU time of a live process so far, in clock ticks (None once gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def server_pids():
    """The local stack's influxd and Kafka (their pid files under `deploy/local/stack`'s state
    directory), when they run on this machine."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    state = os.environ.get("STATMSG_STACK_DIR", os.path.join(root, ".stack"))
    pids = {}
    for name, directory in (("influxd", "influxdb"), ("kafka", os.path.join("kafka", "broker-1"))):
        try:
            with open(os.path.join(state, directory, "pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if cpu_ticks(pid) is not None:
            pids[name] = pid
    return pids


# CPU seconds per single-consumer drain and per straight posting, by process.
CPU = {"drain": [], "straight": []}
TICK = os.sysconf("SC_CLK_TCK")


def servers_cpu_now():
    """Each server's pid and CPU ticks so far."""
    return {name: (pid, cpu_ticks(pid)) for name, pid in server_pids().items()}


def servers_cpu_since(before):
    """CPU seconds each server spent since `before` (servers gone meanwhile left out)."""
    spent = {}
    for name, (pid, start) in before.items():
        now = cpu_ticks(pid)
        if now is not None and start is not None:
            spent[name] = (now - start) / TICK
    return spent


def settle(timeout=30.0):
    """Waits until influxd and Kafka are idle (under 5 % of a core for half a second): after a
    drain InfluxDB compacts what it was given for a while, which would slow whatever is timed
    next by up to half."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        before = servers_cpu_now()
        if not before:
            return
        time.sleep(0.5)
        spent = servers_cpu_since(before)
        if len(spent) == len(before) and sum(spent.values()) < 0.025:
            return
    sys.stderr.write(f"note: influxd and Kafka still busy after {timeout:.0f} s; timing anyway\n")


def set_up(binary, path):
    """What an admin does once per deployment: the topics and the database with its retention
    policy and continuous queries (a fresh group's consumer finds them; it would create them
    otherwise, on the clock: about 0.1 s and a fifth of InfluxDB's CPU of a drain)."""
    for server in ("kafka", "influx"):
        subprocess.run([binary, server, "setup", "--config", path], check=True, stdout=subprocess.DEVNULL)


def drain(binary, d, topic, consumers, run):
    """Starts `consumers` consumers in a fresh group; seconds until all logged "caught up"."""
    group = f"{topic}-g{consumers}-{run}"
    db = re.sub(r"[^A-Za-z0-9_]", "_", group)
    path = config(d, group, topic, group, db)
    env = dict(os.environ, RUST_LOG="info")
    set_up(binary, path)
    settle()
    servers = servers_cpu_now()
    start = time.time()
    procs = [subprocess.Popen([binary, "consume", "--config", path], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(consumers)]
    caught = [None] * consumers
    logs = [[] for _ in range(consumers)]

    def watch(i):
        for line in procs[i].stderr:
            logs[i].append(line)
            if "caught up" in line and caught[i] is None:
                caught[i] = time.time()

    threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(consumers)]
    for t in threads:
        t.start()
    deadline = start + 1800
    while any(c is None for c in caught):
        if time.time() > deadline or any(p.poll() is not None for p in procs):
            for i, p in enumerate(procs):
                p.kill()
                sys.stderr.write(f"--- consumer {i}\n" + "".join(logs[i][-30:]))
            raise SystemExit("a consumer did not catch up")
        time.sleep(0.02)
    took = max(caught) - start
    if consumers == 1:
        CPU["drain"].append(dict(consumer=(cpu_ticks(procs[0].pid) or 0) / TICK, **servers_cpu_since(servers)))
    if consumers > 1:
        # A child's owner learns the versions of a parent another consumer owns from that one's
        # saved state, at its next heartbeat (2 s here): the last rows come a few seconds later.
        time.sleep(8)
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()
    return took, db


def drain_with_kill(binary, d, topic, run):
    """Two consumers; one is killed (SIGKILL) once both hold partitions. Returns the database
    once the survivor, given the dead one's partitions, logged "caught up" again."""
    group = f"{topic}-kill-{run}"
    db = re.sub(r"[^A-Za-z0-9_]", "_", group)
    path = config(d, group, topic, group, db)
    env = dict(os.environ, RUST_LOG="info")
    set_up(binary, path)
    procs = [subprocess.Popen([binary, "consume", "--config", path], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    logs = [[] for _ in procs]

    def watch(i):
        for line in procs[i].stderr:
            logs[i].append((time.time(), line))

    for i in range(2):
        threading.Thread(target=watch, args=(i,), daemon=True).start()

    def holds_partitions(i):
        return any("assignment changed" in l and "partitions={}" not in l for _, l in logs[i])

    deadline = time.time() + 300
    while not (holds_partitions(0) and holds_partitions(1)):
        if time.time() > deadline:
            raise SystemExit("the two consumers never both held partitions")
        time.sleep(0.01)
    procs[0].kill()
    killed_at = time.time()
    # The survivor gets the partitions after the group's session timeout, then catches up.
    while not any(t > killed_at and "caught up" in l and "partitions={0, 1, 2, 3, 4, 5}" in l for t, l in logs[1]):
        if time.time() > deadline or procs[1].poll() is not None:
            procs[1].kill()
            sys.stderr.write("".join(l for _, l in logs[1][-30:]))
            raise SystemExit("the survivor did not take over and catch up")
        time.sleep(0.05)
    time.sleep(8)  # heartbeats, as above
    procs[1].terminate()
    procs[1].wait()
    return db


def escape(text, chars):
    for c in "\\" + chars:
        text = text.replace(c, "\\" + c)
    return text


def export(db):
    """Every point of `db` as line protocol (tags and typed fields as InfluxDB holds them)."""
    lines = []
    for s in series(influx("SHOW MEASUREMENTS", db)):
        for (m,) in s["values"]:
            if m in HEARTBEATS:
                continue
            tags = {v[0] for t in series(influx(f'SHOW TAG KEYS FROM "{m}"', db)) for v in t["values"]}
            types = {v[0]: v[1] for t in series(influx(f'SHOW FIELD KEYS FROM "{m}"', db)) for v in t["values"]}
            for t in series(influx(f'SELECT * FROM "{m}"', db)):
                cols = t["columns"]
                for row in t["values"]:
                    tagpart, fieldpart, ts = [], [], None
                    for c, v in zip(cols, row):
                        if c == "time":
                            ts = v
                        elif v is None:
                            continue
                        elif c in tags:
                            tagpart.append(f"{escape(c, ', =')}={escape(str(v), ', =')}")
                        else:
                            kind = types.get(c, "float")
                            if kind == "integer":
                                value = f"{int(v)}i"
                            elif kind == "string":
                                value = '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
                            elif kind == "boolean":
                                value = "true" if v else "false"
                            else:
                                value = repr(float(v))
                            fieldpart.append(f"{escape(c, ', =')}={value}")
                    head = escape(m, ", ") + "".join("," + x for x in sorted(tagpart))
                    lines.append(f"{head} {','.join(fieldpart)} {ts}")
    return lines


def drop(db):
    """Removes a database once counted: InfluxDB keeps background work for every shard it
    holds (each run writes 120 days: about 20 shards), which would slow the steps after it."""
    influx(f'DROP DATABASE "{db}"', method="POST")


def straight_copy(lines, db, expected):
    """Posts `lines` straight into `db` (see `post_straight`), checks that it holds the points
    `expected` per measurement, drops it; the seconds the posting took."""
    took = post_straight(lines, db)
    held = counts(db)
    drop(db)
    if held != expected:
        raise SystemExit(f"the straight copy holds {held}, not {expected}")
    return took


def post_straight(lines, db):
    influx(f'CREATE DATABASE "{db}"', method="POST")
    bodies = [gzip.compress(("\n".join(lines[i:i + POINTS_PER_BODY]) + "\n").encode(), 1)
              for i in range(0, len(lines), POINTS_PER_BODY)]
    url = f"{INFLUX}/write?db={db}&precision=ns"

    def post(body):
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Encoding": "gzip"})
        with urllib.request.urlopen(req) as r:
            r.read()

    settle()
    servers = servers_cpu_now()
    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(IN_FLIGHT) as pool:
        list(pool.map(post, bodies))
    took = time.time() - start
    CPU["straight"].append(servers_cpu_since(servers))
    return took


def main():
    binary = sys.argv[1]
    runs = [int(a) for a in sys.argv[2:]] or [1, 2, 3]
    sim = os.environ.get("STATMSG_BENCH_FLEET", f"/tmp/statmsg-bench-fleet-{SITES}x{DAYS}")
    if not os.path.exists(os.path.join(sim, "bench", "truth.json")):
        subprocess.run(["rm", "-rf", sim], check=True)
        subprocess.run([binary, "simulate", "--out", sim, "--hierarchy", "bench", "--sites", str(SITES),
                        "--days", str(DAYS)], check=True, stdout=subprocess.DEVNULL)
    stamp = str(int(time.time()))
    topic = f"bench-consume-{stamp}"
    with tempfile.TemporaryDirectory() as d:
        t0 = time.time()
        sites, messages, records = collect(binary, sim, d, topic)
        print(f"backlog: {sites} sites x {DAYS} days, {records:,} records in {messages:,} messages in {topic} "
              f"({PARTITIONS} partitions), collected in {time.time() - t0:.1f} s")
        results, reference, repeats, lines = {}, None, {}, None
        for n in runs:
            took, db = drain(binary, d, topic, n, stamp)
            got = counts(db)
            if n == 1 and REPEAT > 1:
                # Alternately: another drain by a fresh consumer, and a straight posting.
                lines = export(db)
                times, straight = [took], []
                for k in range(1, REPEAT + 1):
                    straight.append(straight_copy(lines, f"bench_straight_{stamp}_{k}", got))
                    if k < REPEAT:
                        again_took, again_db = drain(binary, d, topic, 1, f"{stamp}-{k}")
                        again = counts(again_db)
                        drop(again_db)
                        if again != got:
                            raise SystemExit(f"drain {k + 1} wrote {again}, the first {got}")
                        times.append(again_took)
                repeats = {"consumer": sorted(times), "straight": sorted(straight)}
                took = repeats["consumer"][len(times) // 2]

            if reference is None:
                reference = (db, got)
            else:
                drop(db)
                if got != reference[1]:
                    raise SystemExit(f"{n} consumers wrote {got}, 1 wrote {reference[1]}")
            results[n] = took
            print(f"{n} consumer(s): drained {records:,} records into {sum(got.values()):,} points in {took:.2f} s "
                  f"({records / took:,.0f} records/s); points per measurement {got}")
        if os.environ.get("STATMSG_BENCH_KILL", "1") == "1":
            db = drain_with_kill(binary, d, topic, stamp)
            got = counts(db)
            drop(db)
            if got != reference[1]:
                raise SystemExit(f"with a consumer killed mid-drain: {got}, not {reference[1]}")
            print(f"2 consumers, one killed (SIGKILL) mid-drain: the survivor stored the same points "
                  f"per measurement, none lost and none extra: {got}")
        lines = lines or export(reference[0])
        drop(reference[0])
        if os.environ.get("STATMSG_BENCH_EXPORT"):
            with open(os.environ["STATMSG_BENCH_EXPORT"], "w") as f:
                f.write("\n".join(lines) + "\n")
        if repeats:
            straight = repeats["straight"][len(repeats["straight"]) // 2]
        else:
            straight = straight_copy(lines, f"bench_straight_{stamp}", reference[1])
        print(f"InfluxDB alone: the same {len(lines):,} points posted straight "
              f"({POINTS_PER_BODY} per body, gzip, {IN_FLIGHT} in flight) in {straight:.2f} s")
        if repeats:
            show = lambda ts: ", ".join(f"{t:.2f}" for t in ts)
            print(f"{REPEAT} alternate runs each, sorted: 1 consumer {show(repeats['consumer'])} s; "
                  f"InfluxDB alone {show(repeats['straight'])} s")
        for n, took in results.items():
            print(f"ratio, {n} consumer(s): {straight / took:.2f} of InfluxDB's own pace "
                  f"(speed-up over 1: {results[runs[0]] / took:.2f})")
        print_cpu()


def print_cpu():
    """Median CPU seconds by process, and the least time a drain can take on these cores."""
    def median(rows, name):
        values = sorted(row[name] for row in rows if name in row)
        return values[len(values) // 2] if values else None

    drains, straights = CPU["drain"], CPU["straight"]
    if not drains:
        return
    cores = os.cpu_count() or 1
    used = {name: median(drains, name) for name in ("consumer", "influxd", "kafka")}
    shown = ", ".join(f"{name} {value:.2f}" for name, value in used.items() if value is not None)
    line = f"CPU seconds, median of {len(drains)} single-consumer drains: {shown}"
    if None not in used.values():
        # Medians of each process, added: about what one drain costs the machine; a lower bound
        # of its time only as far as no server defers work past it (InfluxDB compacts later).
        total = sum(used.values())
        line += f" (sum {total:.2f}: on {cores} cores about {total / cores:.2f} s of a drain at the least)"
    alone = median(straights, "influxd")
    print(line + (f"; InfluxDB alone: influxd {alone:.2f}" if alone is not None else ""))


if __name__ == "__main__":
    main()
