#!/usr/bin/env python3
"""`./bench latency`: from a status message appended to a site's log to the moment it can be
queried in InfluxDB (needs `deploy/local/stack up`).

Five site logs, one `statmsg collect` each and one `statmsg consume`, all on their default
settings (only names and addresses set); after a warm-up message, 200 status messages are
appended at random moments over 30 s, each to a random site, each with a unique insertion
string. A poller queries InfluxDB every 50 ms and notes when each message first appears.
Prints p50, p90, p99 and the maximum (the poll interval adds up to 50 ms).

Usage: bench.d/latency.py STATMSG_BINARY
"""

import datetime
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

BROKERS = os.environ.get("STATMSG_BENCH_KAFKA", "127.0.0.1:9092")
INFLUX = os.environ.get("STATMSG_BENCH_INFLUXDB", "http://127.0.0.1:8086")
MESSAGES = int(os.environ.get("STATMSG_BENCH_MESSAGES", "200"))
SPREAD_S = float(os.environ.get("STATMSG_BENCH_SPREAD_S", "30"))
SITES = ["LA1", "LA2", "LA3", "LA4", "LA5"]


def line(site, marker, now):
    gmt = now.strftime("%a %b %d %H:%M:%S.") + f"{now.microsecond // 1000:03d}" + now.strftime(" %Y")
    istr = "".join(f' ISTR{k}="{marker if k == 0 else ""}"' for k in range(10))
    message = (f'STATMSG: ID=6702 SEV=I LEV=M SOURCE="SMS Server" COMP="SMS_WSUS_SYNC_MANAGER" '
               f"SYS={site}.contoso.com SITE={site} PID=2836 TID=9640 GMTDATE={gmt}{istr} NUMATTRS=0")
    local = now.strftime("%m-%d-%Y %H:%M:%S.") + f"{now.microsecond // 1000:03d}"
    return f"{message}  $$<SMS_WSUS_SYNC_MANAGER><{local}+0><thread=9640 (0x25A8)>\r\n"


def seen_markers(db):
    q = urllib.parse.urlencode({"db": db, "q": "SELECT istr0 FROM statmsg WHERE time > now() - 1h"})
    try:
        with urllib.request.urlopen(f"{INFLUX}/query?{q}") as r:
            result = json.load(r)
    except OSError:
        return set()
    out = set()
    for statement in result.get("results", []):
        for s in statement.get("series", []):
            out.update(v[1] for v in s["values"])
    return out


def main():
    binary = sys.argv[1]
    name = f"bench_latency_{int(time.time())}"
    with tempfile.TemporaryDirectory() as d:
        def config(file, extra):
            path = os.path.join(d, file)
            with open(path, "w") as f:
                f.write(f"""hierarchy = "{name}"
{extra}
[kafka]
brokers = "{BROKERS}"
topic = "{name}.records"
dead_letter_topic = "{name}.dead-letter"
state_topic = "{name}.tracker-state"
group_id = "{name}"
[influxdb]
url = "{INFLUX}"
database = "{name}"
""")
            return path

        procs, logs = [], {}
        for site in SITES:
            folder = os.path.join(d, site)
            os.makedirs(folder)
            logs[site] = os.path.join(folder, "WsyncMgr.log")
            open(logs[site], "w").close()
            path = config(f"{site}.toml", f'[collect]\npaths = ["{folder}/*.log"]\n'
                                          f'state_dir = "{d}/state-{site}"\nsite = "{site}"\n')
            procs.append(subprocess.Popen([binary, "collect", "--config", path],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([binary, "consume", "--config", config("consume.toml", "")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        try:
            appended, first_seen = {}, {}
            stop = threading.Event()

            def poll():
                while not stop.is_set():
                    now = time.time()
                    for marker in seen_markers(name):
                        first_seen.setdefault(marker, now)
                    time.sleep(0.05)

            def append(site, marker):
                now = datetime.datetime.now(datetime.timezone.utc)
                with open(logs[site], "a") as f:
                    f.write(line(site, marker, now))
                appended[marker] = time.time()

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            # Warm-up: the whole path is up once a message of every site went through (a
            # collector starting after an append would start after it: start_at = "end").
            deadline = time.time() + 120
            for k in range(1000):
                for site in SITES:
                    append(site, f"warm-{site}-{k}")
                time.sleep(2)
                if all(any(m.startswith(f"warm-{s}-") for m in first_seen) for s in SITES):
                    break
                if time.time() > deadline:
                    raise SystemExit("the warm-up messages never reached InfluxDB")
            time.sleep(2)
            moments = sorted(random.uniform(0, SPREAD_S) for _ in range(MESSAGES))
            start = time.time()
            for n, at in enumerate(moments):
                time.sleep(max(0.0, start + at - time.time()))
                append(random.choice(SITES), f"lat-{n}")
                time.sleep(0.002)  # distinct milliseconds: a point is keyed by its time
            deadline = time.time() + 60
            markers = [f"lat-{n}" for n in range(MESSAGES)]
            while any(m not in first_seen for m in markers) and time.time() < deadline:
                time.sleep(0.1)
            stop.set()
            missing = [m for m in markers if m not in first_seen]
            if missing:
                raise SystemExit(f"{len(missing)} messages never reached InfluxDB: {missing[:5]}")
            latencies = sorted(first_seen[m] - appended[m] for m in markers)

            def pct(p):
                return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

            print(f"{MESSAGES} status messages over {SPREAD_S:.0f} s to {len(SITES)} site logs "
                  f"({len(SITES)} collectors, 1 consumer, defaults): append to queryable "
                  f"p50 {pct(50):.2f} s, p90 {pct(90):.2f} s, p99 {pct(99):.2f} s, max {latencies[-1]:.2f} s")
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait()


if __name__ == "__main__":
    main()
