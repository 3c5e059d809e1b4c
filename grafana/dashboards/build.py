#!/usr/bin/env python3
"""Writes statmsg's Grafana dashboards (the JSON files beside this script) from one description.

The JSON files are what Grafana provisions and what users read; this script only keeps the many
similar panels consistent. `grafana/check` fails when a JSON file differs from what this script
writes, so edit here and run `grafana/dashboards/build.py`.
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "influxdb", "uid": "${datasource}"}
SCOPE = '"hierarchy" =~ /^$hierarchy$/ AND "site" =~ /^$site$/'
# "Now" is what the consumer wrote in its last heartbeats (every minute), not the whole range.
NOW = "time > now() - 5m"
SITE_LINK = "/d/statmsg-site/statmsg-site-detail?var-hierarchy=${__data.fields.hierarchy}&var-site=${__data.fields.site}&${__url_time_range}"
GREEN, YELLOW, ORANGE, RED, BLUE, GREY = "green", "yellow", "orange", "red", "blue", "text"


def target(ref, query, fmt="time_series", alias=None):
    t = {"refId": ref, "datasource": DS, "query": query, "rawQuery": True, "resultFormat": fmt}
    if alias:
        t["alias"] = alias
    return t


def thresholds(*steps):
    """steps: (value or None for the base, colour)."""
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def panel(kind, title, description, grid, targets, options, defaults, overrides=(), transformations=()):
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": dict(zip("xywh", grid)),
        "targets": targets,
        "options": options,
        "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
    }
    if transformations:
        p["transformations"] = list(transformations)
    return p


def stat(title, description, grid, query, unit, steps, no_value="0"):
    options = {
        "graphMode": "none", "colorMode": "background", "justifyMode": "center", "textMode": "value",
        "wideLayout": True, "showPercentChange": False, "percentChangeColorMode": "standard",
        "orientation": "auto", "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    }
    defaults = {"unit": unit, "noValue": no_value, "thresholds": thresholds(*steps), "color": {"mode": "thresholds"}}
    return panel("stat", title, description, grid, [target("A", query)], options, defaults)


def per_site_now(aggregate, field):
    return (f'SELECT {aggregate}("v") FROM (SELECT last("{field}") AS "v" FROM "site_sync_state" '
            f'WHERE {NOW} AND {SCOPE} GROUP BY "hierarchy", "site")')


def legend(placement="bottom"):
    return {"displayMode": "list", "placement": placement, "showLegend": True, "calcs": []}


def tooltip():
    return {"mode": "multi", "sort": "none"}


def variables():
    def query_var(name, label, query):
        return {
            "type": "query", "name": name, "label": label, "datasource": DS, "query": query, "definition": query,
            "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*", "sort": 1, "hide": 0,
            "current": {"text": "All", "value": "$__all"}, "options": [], "regex": "",
            "description": f"Regular expressions of the {label.lower()}s shown (All: every one).",
        }
    return [
        {"type": "datasource", "name": "datasource", "label": "InfluxDB", "query": "influxdb", "hide": 0,
         "current": {"text": "statmsg InfluxDB", "value": "statmsg-influxdb"}, "options": [], "refresh": 1, "regex": "",
         "description": "The InfluxDB the statmsg consumer writes to."},
        query_var("hierarchy", "Hierarchy", 'SHOW TAG VALUES FROM "site_sync_state" WITH KEY = "hierarchy"'),
        query_var("site", "Site",
                  'SHOW TAG VALUES FROM "site_sync_state" WITH KEY = "site" WHERE "hierarchy" =~ /^$hierarchy$/'),
    ]


def dashboard(uid, title, description, panels, time_from, tags, links=()):
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    return {
        "uid": uid, "title": title, "description": description, "tags": ["statmsg"] + tags,
        "timezone": "browser", "editable": False, "graphTooltip": 1, "schemaVersion": 42, "version": 1,
        "refresh": "1m", "time": {"from": time_from, "to": "now"}, "fiscalYearStartMonth": 0, "liveNow": False,
        "weekStart": "", "links": list(links), "panels": panels, "templating": {"list": variables()},
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
        }]},
    }


def link(title, uid_tag):
    return {"title": title, "type": "dashboards", "icon": "dashboard", "tooltip": "", "tags": [uid_tag],
            "asDropdown": False, "targetBlank": False, "includeVars": True, "keepTime": True}


STATUS_MAPPINGS = [{"type": "value", "options": {
    "succeeded": {"text": "succeeded", "color": GREEN, "index": 0},
    "running": {"text": "running", "color": BLUE, "index": 1},
    "failed": {"text": "failed", "color": RED, "index": 2},
    "abandoned": {"text": "abandoned", "color": ORANGE, "index": 3},
    "unknown": {"text": "unknown", "color": GREY, "index": 4},
}}]

ALERT_MAPPINGS = [{"type": "value", "options": {
    "stalled": {"text": "stalled", "color": RED, "index": 0},
    "failed": {"text": "failed", "color": RED, "index": 1},
    "missing_success": {"text": "missing success", "color": RED, "index": 2},
    "silent": {"text": "collector silent", "color": RED, "index": 3},
    "slow": {"text": "slow", "color": ORANGE, "index": 4},
    "child_lag": {"text": "child lag", "color": ORANGE, "index": 5},
}}]


def column(name, **props):
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": k, "value": v} for k, v in props.items()]}


def table_options(sort_by=None):
    options = {"frameIndex": 0, "showHeader": True, "cellHeight": "sm",
               "footer": {"show": False, "reducer": ["sum"], "countRows": False, "fields": []}}
    if sort_by:
        options["sortBy"] = [{"displayName": sort_by, "desc": False}]
    return options


def site_link_override():
    return column("site", links=[{"title": "Site detail: ${__data.fields.hierarchy}/${__data.fields.site}",
                                  "url": SITE_LINK}])


def fleet():
    s = []
    x = 0
    red_if_any = [(None, GREEN), (1, RED)]
    for title, desc, query, unit, steps, w in [
        ("Sites", "Sites the consumer reported in the last 5 minutes. Fewer than you have: a collector or the consumer is missing (see Silent sites).",
         per_site_now("count", "alert_count"), "none", [(None, BLUE)], 3),
        ("Failing now", "Sites whose latest sync failed (6703). Red: open the site from Needs attention; the cause and HRESULT are in its row.",
         per_site_now("sum", "alert_failed"), "none", red_if_any, 3),
        ("Stalled now", "Sites with a sync running longer than the larger of 2 h and 3x their median. Red: check the site's WsyncMgr.log and the WSUS server.",
         per_site_now("sum", "alert_stalled"), "none", red_if_any, 3),
        ("Missing success", "Sites without a successful sync in their expected interval (26 h by default). Red: check the SUP schedule and the latest run.",
         per_site_now("sum", "alert_missing_success"), "none", red_if_any, 4),
        ("Child sites lagging", "Child sites whose update catalog version has been behind their parent's for over 2 h. Orange: check the parent's sync notification and replication.",
         per_site_now("sum", "alert_child_lag"), "none", [(None, GREEN), (1, ORANGE)], 4),
        ("Silent sites", "Sites whose collector sent no heartbeat for 10 minutes. Red: the statmsg service, its server or its path to Kafka is down.",
         per_site_now("sum", "alert_silent"), "none", red_if_any, 3),
        ("Oldest last success", "The longest time any shown site has gone since its last successful sync. Over a day: one site misses its schedule; see Missing success.",
         per_site_now("max", "last_success_age_s"), "dtdurations", [(None, GREEN), (86400, ORANGE), (26 * 3600, RED)], 4),
    ]:
        s.append(stat(title, desc, (x, 0, w, 4), query, unit, steps, no_value="0" if unit == "none" else "none yet"))
        x += w

    s.append(panel(
        "state-timeline", "Sync status of every site",
        "The outcome of each site's latest sync over time (running while one runs), from the consumer's minute-by-minute state. Red bands are failures, blue ones running syncs: a long blue band is a stall.",
        (0, 4, 24, 9),
        [target("A", f'SELECT last("status") FROM "site_sync_state" WHERE $timeFilter AND {SCOPE} '
                     'GROUP BY time($__interval), "hierarchy", "site" fill(previous)', alias="$tag_hierarchy/$tag_site")],
        {"showValue": "never", "rowHeight": 0.8, "mergeValues": True, "alignValue": "left",
         "legend": legend(), "tooltip": tooltip()},
        {"unit": "none", "mappings": STATUS_MAPPINGS, "color": {"mode": "thresholds"},
         "thresholds": thresholds((None, GREY)), "custom": {"lineWidth": 0, "fillOpacity": 80, "spanNulls": False}},
    ))

    s.append(panel(
        "table", "Needs attention",
        "Every active alert of the shown sites, one row each, newest state of the last minutes: what, since when, the cause (failure text and HRESULT) and what to check. Click a site for its detail. Empty is good.",
        (0, 13, 24, 9),
        [target("A", 'SELECT last("since_ms") AS "since", last("parent") AS "parent", last("detail") AS "detail" '
                     f'FROM "site_alert" WHERE time > now() - 3m AND {SCOPE} GROUP BY "hierarchy", "site", "kind", "summary"',
                fmt="table")],
        table_options("since"),
        {"unit": "none", "custom": {"align": "auto", "inspect": True}},
        [site_link_override(),
         column("since", unit="dateTimeFromNow", displayName="since"),
         column("kind", mappings=ALERT_MAPPINGS, displayName="alert",
                custom={"cellOptions": {"type": "color-background"}, "align": "auto", "inspect": False}),
         column("summary", displayName="cause (failure and HRESULT)"),
         column("detail", displayName="detail: what to check")],
        [{"id": "organize", "options": {"excludeByName": {"Time": True},
                                         "indexByName": {"hierarchy": 0, "site": 1, "parent": 2, "kind": 3, "since": 4, "summary": 5, "detail": 6}}}],
    ))

    s.append(panel(
        "table", "Healthy sites",
        "Shown sites without any alert: their latest outcome, how long since their last success, their last duration and catalog version. A site missing here and from Needs attention is not reported at all: see Sites.",
        (0, 22, 24, 7),
        [target("A", 'SELECT "status", "last_success_age", "last_duration", "content_version" FROM '
                     '(SELECT last("alert_count") AS "alerts", last("status") AS "status", last("last_success_age_s") AS "last_success_age", '
                     'last("last_duration_s") AS "last_duration", last("content_version") AS "content_version" '
                     f'FROM "site_sync_state" WHERE {NOW} AND {SCOPE} GROUP BY "hierarchy", "site") '
                     'WHERE "alerts" = 0 GROUP BY "hierarchy", "site"', fmt="table")],
        table_options("site"),
        {"unit": "none", "custom": {"align": "auto", "inspect": False}},
        [site_link_override(),
         column("status", mappings=STATUS_MAPPINGS, custom={"cellOptions": {"type": "color-text"}, "align": "auto", "inspect": False}),
         column("last_success_age", unit="dtdurations", displayName="since last success"),
         column("last_duration", unit="dtdurations", displayName="last duration"),
         column("content_version", displayName="catalog version", decimals=0)],
        [{"id": "organize", "options": {"excludeByName": {"Time": True},
                                         "indexByName": {"hierarchy": 0, "site": 1, "status": 2}}}],
    ))

    s.append(panel(
        "timeseries", "Sync duration per day (median and slowest)",
        "Successful syncs of the shown sites, per day: the median and the slowest. A rising median means the catalog or WSUS grows: plan clean-up (decline superseded updates) before it outgrows the sync window.",
        (0, 29, 12, 8),
        [target("A", 'SELECT median("duration_s") AS "median", max("duration_s") AS "slowest" FROM "sync_run" '
                     f'WHERE $timeFilter AND "outcome" = \'succeeded\' AND {SCOPE} GROUP BY time(1d) fill(none)')],
        {"legend": legend(), "tooltip": tooltip()},
        {"unit": "s", "min": 0, "color": {"mode": "palette-classic"},
         "custom": {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 10, "showPoints": "always", "spanNulls": True}},
    ))

    s.append(panel(
        "timeseries", "Runs and failures per day",
        "Sync runs of the shown sites started per day, and how many failed. Failures on several days in a row: open Needs attention or the site; a failing top site stops its children too.",
        (12, 29, 12, 8),
        [target("A", f'SELECT count("outcome") AS "runs" FROM "sync_run" WHERE $timeFilter AND {SCOPE} GROUP BY time(1d) fill(0)'),
         target("B", f'SELECT count("outcome") AS "failures" FROM "sync_run" WHERE $timeFilter AND "outcome" = \'failed\' AND {SCOPE} GROUP BY time(1d) fill(0)')],
        {"legend": legend(), "tooltip": tooltip()},
        {"unit": "short", "min": 0, "decimals": 0, "color": {"mode": "palette-classic"},
         "custom": {"drawStyle": "bars", "lineWidth": 1, "fillOpacity": 60, "showPoints": "never"}},
        [{"matcher": {"id": "byName", "options": "failures"},
          "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": RED}}]}],
    ))
    return dashboard(
        "statmsg-fleet", "statmsg: fleet overview",
        "Software update synchronization of every ConfigMgr site statmsg watches: what needs attention now, every site's status over time, and daily durations and failures.",
        s, "now-7d", ["fleet"],
    )


DASHBOARDS = {"fleet.json": fleet}


def render(build):
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main():
    for name, build in DASHBOARDS.items():
        with open(os.path.join(HERE, name), "w") as f:
            f.write(render(build))
        print(f"wrote grafana/dashboards/{name}")


if __name__ == "__main__":
    main()
