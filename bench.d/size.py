#!/usr/bin/env python3
"""`./bench size`: points and bytes per site per year in InfluxDB 1.x, for the retention
policies `statmsg influx setup` creates (needs Kafka: `deploy/local/stack up`).

A private `influxd` (Debian's package, the local stack's configuration, port 18086) that
snapshots and compacts a shard 2 s after its last write, so that the bytes measured are those of
compacted TSM files, not of the write-ahead log.

1. History, through the real pipeline: `statmsg simulate --sites 5 --days 365` (a central site,
   primaries, secondaries; a daily sync), one `statmsg collect` per site into a fresh topic, one
   `statmsg consume` into database `size_history` (which runs the setup: `statmsg_recent` and the
   continuous queries). Its long policy then holds `statmsg`, `sync_run` and
   `version_propagation`: a year of history.
2. Per-minute points, as the consumer writes them: the newest `site_sync_state` and
   `collector_status` point the consumer wrote for each site, repeated every minute over the 30
   days `statmsg_recent` keeps, ages growing and alerts coming and going as they do, into
   `size_history.statmsg_recent` (what the short policy holds at any time).
3. Downsampled: the continuous queries' own statements (from SHOW CONTINUOUS QUERIES) run over
   those 30 days into database `size_hourly`; a year is 365/30 of that.

Prints points and TSM bytes per site for each, and for comparison a year of per-minute points
kept without downsampling (extrapolated from the 30 days).

Usage: bench.d/size.py STATMSG_BINARY
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import consume  # noqa: E402  (the collect helpers and the InfluxDB client of `./bench consume`)

PORT = 18086
INFLUX = f"http://127.0.0.1:{PORT}"
SITES = 5
DAYS = 365
RECENT_DAYS = 30
HERE = os.path.dirname(os.path.abspath(__file__))


def start_influxd(d):
    """The local stack's InfluxDB configuration, on other ports, compacting at once."""
    with open(os.path.join(HERE, "..", "deploy", "local", "influxdb.conf")) as f:
        conf = f.read()
    conf = (conf.replace("@DIR@", d).replace("@PORT@", str(PORT)).replace("@RPC_PORT@", str(PORT + 2)))
    conf = conf.replace("query-log-enabled = false",
                        "query-log-enabled = false\n  cache-snapshot-write-cold-duration = \"2s\"\n"
                        "  compact-full-write-cold-duration = \"2s\"\n  max-series-per-database = 0")
    path = os.path.join(d, "influxdb.conf")
    with open(path, "w") as f:
        f.write(conf)
    proc = subprocess.Popen(["influxd", "-config", path], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(d, "influxd.log"), "w"))
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{INFLUX}/ping")
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the private influxd did not start: " + open(os.path.join(d, "influxd.log")).read()[-2000:])


def query(q, db=None, method="GET"):
    return list(consume.series(consume.influx(q, db, method)))


def write(db, rp, lines):
    url = f"{INFLUX}/write?db={db}&rp={rp}&precision=s"
    for i in range(0, len(lines), 5000):
        body = ("\n".join(lines[i:i + 5000]) + "\n").encode()
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST")) as r:
            r.read()


def points(db, rp, measurement):
    rows = query(f'SELECT count(*) FROM "{rp}"."{measurement}"', db)
    return max(rows[0]["values"][0][1:]) if rows else 0


def fields_and_types(db, rp, measurement):
    return {v[0]: v[1] for s in query(f'SHOW FIELD KEYS FROM "{rp}"."{measurement}"', db) for v in s["values"]}


def line(measurement, tags, fields, types, ts):
    parts = []
    for k, v in fields.items():
        if v is None:
            continue
        kind = types.get(k, "float")
        if kind == "integer":
            parts.append(f"{k}={int(v)}i")
        elif kind == "string":
            parts.append(f'{k}="' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif kind == "boolean":
            parts.append(f"{k}={'true' if v else 'false'}")
        else:
            parts.append(f"{k}={float(v)!r}")
    tagpart = "".join(f",{k}={consume.escape(str(v), ', =')}" for k, v in sorted(tags.items()))
    return f"{measurement}{tagpart} {','.join(parts)} {ts}"


def per_minute(db, rp, measurement, end):
    """RECENT_DAYS of a minute's points per site, from the newest real point of each site."""
    types = fields_and_types(db, rp, measurement)
    assert types, f"no fields of {rp}.{measurement}"
    out = []
    for s in query(f'SELECT * FROM "{rp}"."{measurement}" GROUP BY * ORDER BY time DESC LIMIT 1', db):
        fields = {c: v for c, v in zip(s["columns"], s["values"][0]) if c != "time"}
        for minute in range(RECENT_DAYS * 24 * 60):
            f = dict(fields)
            ts = end - (RECENT_DAYS * 24 * 60 - minute) * 60
            # Ages grow between daily syncs; an alert now and then (a few hours a week).
            for age in ("last_success_age_s", "last_heartbeat_age_s", "heartbeat_age_s"):
                if age in f:
                    f[age] = (minute % 1440) * 60 + 17 if age == "last_success_age_s" else 30 + minute % 60
            if "alert_count" in f:
                alerting = (minute // 60) % 168 < 3
                f["alert_count"] = 1 if alerting else 0
                f["alert_slow"] = 1 if alerting else 0
                f["status"] = "slow" if alerting else (f.get("status") or "healthy")
            out.append(line(measurement, s.get("tags", {}), f, types, ts))
    return out


def wait_compacted(d):
    """Until every shard is on disk as TSM and nothing changed for 5 s."""
    last, still = None, 0
    while still < 5:
        time.sleep(1)
        now = sorted((p, os.path.getsize(p)) for p in walk(d))
        still = still + 1 if now == last else 0
        last = now
    wal = [p for p, size in last if p.endswith(".wal") and size > 0]
    if wal:
        raise SystemExit(f"still in the WAL after compaction: {wal}")


def walk(d):
    for root, _, files in os.walk(d):
        for f in files:
            yield os.path.join(root, f)


def tsm_bytes(d, db, rp):
    return sum(os.path.getsize(p) for p in walk(os.path.join(d, "data", db, rp)) if p.endswith(".tsm"))


def main():
    binary = sys.argv[1]
    sim = f"/tmp/statmsg-bench-fleet-{SITES}x{DAYS}"
    if not os.path.exists(os.path.join(sim, "bench", "truth.json")):
        shutil.rmtree(sim, ignore_errors=True)
        start = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - (DAYS + 1) * 86400))
        subprocess.run([binary, "simulate", "--out", sim, "--hierarchy", "bench", "--sites", str(SITES),
                        "--days", str(DAYS), "--start", start], check=True, stdout=subprocess.DEVNULL)
    consume.INFLUX = INFLUX
    with tempfile.TemporaryDirectory() as d:
        influxd = start_influxd(d)
        try:
            topic = f"bench-size-{int(time.time())}"
            _, _, records = consume.collect(binary, sim, d, topic)
            took, db = consume.drain(binary, d, topic, 1, "size")
            print(f"history: {SITES} sites x {DAYS} days, {records:,} records drained in {took:.1f} s into {db}")
            end = int(time.time()) // 60 * 60
            recent = "statmsg_recent"
            for m in ("site_sync_state", "collector_status"):
                lines = per_minute(db, recent, m, end)
                assert lines, f"the consumer wrote no {m}"
                query(f'DELETE FROM "{m}"', db, method="POST")
                write(db, recent, lines)
            # `site_alert` (a point per minute per active alert) is left out: healthy sites have none.
            query('DELETE FROM "site_alert"', db, method="POST")
            hourly = "size_hourly"
            query(f'CREATE DATABASE "{hourly}"', method="POST")
            for s in query("SHOW CONTINUOUS QUERIES"):
                if s["name"] != db:
                    continue
                for name, cq in s["values"]:
                    select = re.search(r"BEGIN (SELECT .*) END$", cq).group(1)
                    select = re.sub(r"INTO \S+\.(\S+\.\S+) FROM", rf'INTO "{hourly}".\1 FROM', select)
                    select = select.replace(" GROUP BY ", f" WHERE time > {end - RECENT_DAYS * 86400}s GROUP BY ")
                    query(select, db, method="POST")
            wait_compacted(d)
            report(d, db, recent, hourly)
        finally:
            influxd.terminate()
            influxd.wait()


def report(d, db, recent, hourly):
    rows = []
    long_m = ("statmsg", "sync_run", "version_propagation")
    history_points = sum(points(db, "autogen", m) for m in long_m)
    history_bytes = tsm_bytes(d, db, "autogen")
    rows.append(("history (`statmsg`, `sync_run`, `version_propagation`), long policy, a year",
                 history_points, history_bytes))
    minute_points = sum(points(db, recent, m) for m in ("site_sync_state", "collector_status"))
    minute_bytes = tsm_bytes(d, db, recent)
    rows.append((f"per-minute (`site_sync_state`, `collector_status`) in `{recent}`, {RECENT_DAYS} days",
                 minute_points, minute_bytes))
    scale = 365 / RECENT_DAYS
    hour_points = sum(points(hourly, "autogen", m) for m in ("site_sync_state_1h", "collector_status_1h"))
    hour_bytes = tsm_bytes(d, hourly, "autogen")
    rows.append(("hourly (`site_sync_state_1h`, `collector_status_1h`), long policy, a year",
                 hour_points * scale, hour_bytes * scale))
    rows.append(("for comparison: per-minute kept a year, not downsampled",
                 minute_points * scale, minute_bytes * scale))
    print(f"| per site | points | bytes (TSM) | bytes per point |\n|---|---:|---:|---:|")
    for what, p, b in rows:
        print(f"| {what} | {p / SITES:,.0f} | {b / SITES / 1000:,.0f} kB | {b / max(p, 1):.1f} |")
    print(json.dumps({"sites": SITES, "rows": [[w, p, b] for w, p, b in rows]}))


if __name__ == "__main__":
    main()
