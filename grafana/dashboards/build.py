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
# The short retention policy of the per-minute points (`[influxdb] recent_retention_policy`).
RECENT = '"statmsg_recent"'
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
    return (f'SELECT {aggregate}("v") FROM (SELECT last("{field}") AS "v" FROM {RECENT}."site_sync_state" '
            f'WHERE {NOW} AND {SCOPE} GROUP BY "hierarchy", "site")')


def legend(placement="bottom"):
    return {"displayMode": "list", "placement": placement, "showLegend": True, "calcs": []}


def tooltip():
    return {"mode": "multi", "sort": "none"}


def variables(multi=True):
    def query_var(name, label, query):
        v = {
            "type": "query", "name": name, "label": label, "datasource": DS, "query": query, "definition": query,
            "refresh": 2, "multi": multi, "includeAll": multi, "sort": 1, "hide": 0, "options": [], "regex": "",
            "description": f"The {label.lower()}s shown" + (" (All: every one)." if multi else "."),
        }
        if multi:
            v["allValue"] = ".*"
            v["current"] = {"text": "All", "value": "$__all"}
        return v
    return [
        {"type": "datasource", "name": "datasource", "label": "InfluxDB", "query": "influxdb", "hide": 0,
         "current": {"text": "statmsg InfluxDB", "value": "statmsg-influxdb"}, "options": [], "refresh": 1, "regex": "",
         "description": "The InfluxDB the statmsg consumer writes to."},
        query_var("hierarchy", "Hierarchy", 'SHOW TAG VALUES FROM "site_sync_state" WITH KEY = "hierarchy"'),
        query_var("site", "Site",
                  'SHOW TAG VALUES FROM "site_sync_state" WITH KEY = "site" WHERE "hierarchy" =~ /^$hierarchy$/'),
    ]


def dashboard(uid, title, description, panels, time_from, tags, links=(), multi=True, annotations=()):
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    return {
        "uid": uid, "title": title, "description": description, "tags": ["statmsg"] + tags,
        "timezone": "browser", "editable": False, "graphTooltip": 1, "schemaVersion": 42, "version": 1,
        "refresh": "1m", "time": {"from": time_from, "to": "now"}, "fiscalYearStartMonth": 0, "liveNow": False,
        "weekStart": "", "links": list(links), "panels": panels, "templating": {"list": variables(multi)},
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
        }] + list(annotations)},
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
        [target("A", f'SELECT last("status") FROM {RECENT}."site_sync_state" WHERE $timeFilter AND {SCOPE} '
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
                     f'FROM {RECENT}."site_alert" WHERE time > now() - 3m AND {SCOPE} GROUP BY "hierarchy", "site", "kind", "summary"',
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
                     f'FROM {RECENT}."site_sync_state" WHERE {NOW} AND {SCOPE} GROUP BY "hierarchy", "site") '
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
        s, "now-7d", ["fleet"], links=[link("statmsg dashboards", "statmsg")],
    )


def site():
    s = []
    now = lambda field: (f'SELECT last("{field}") FROM {RECENT}."site_sync_state" WHERE {NOW} AND {SCOPE}')
    s.append(stat("Since last success", "How long since the site's last successful sync. Red after 26 h (the missing_success alert): check the SUP schedule and the latest run below.",
                  (0, 0, 4, 4), now("last_success_age_s"), "dtdurations", [(None, GREEN), (24 * 3600, ORANGE), (26 * 3600, RED)], no_value="never"))
    s.append(stat("Last success", "When the site's last successful sync ended.",
                  (4, 0, 4, 4), now("last_success_ms"), "dateTimeAsIso", [(None, BLUE)], no_value="never"))
    last = stat("Last duration against the median", "The latest finished run's duration (first) and the median of the last 30 successes (second). Orange or red: the run took over 2x or 3x the median (the slow alert); check WSUS maintenance.",
                (8, 0, 5, 4), now("last_duration_s"), "dtdurations", [(None, GREEN)], no_value="none yet")
    last["targets"].append(target("B", now("median_duration_s")))
    s.append(last)
    versions = stat("Catalog version: site and parent", "The site's update source content version (first) and its parent's (second). Different for over 2 h: the child_lag alert; see Behind parent.",
                    (13, 0, 5, 4), now("content_version"), "none", [(None, BLUE)], no_value="unknown")
    versions["targets"].append(target("B", now("parent_version")))
    versions["fieldConfig"]["defaults"]["decimals"] = 0
    s.append(versions)
    s.append(stat("Behind parent", "How long the site has been behind its parent's catalog version (0: level, or a top site). Orange after 1 h, red after 2 h: check the parent's sync notification, replication and this site's WsyncMgr.log.",
                  (18, 0, 3, 4), now("lag_s"), "dtdurations", [(None, GREEN), (3600, ORANGE), (7200, RED)]))
    s.append(stat("Active alerts", "How many alerts the site has now (the fleet overview's Needs attention lists them with their cause). Red: see the runs below.",
                  (21, 0, 3, 4), now("alert_count"), "none", [(None, GREEN), (1, RED)]))
    s.append(panel(
        "timeseries", "Duration and phases of each run",
        "Every sync run: total duration, time in the WSUS phase and in the site database phase. A growing WSUS phase points at the catalog or the upstream server; a growing database phase at the site database.",
        (0, 4, 24, 8),
        [target("A", f'SELECT "duration_s" AS "duration", "wsus_s" AS "WSUS phase", "site_db_s" AS "site database phase" FROM "sync_run" WHERE $timeFilter AND {SCOPE}')],
        {"legend": legend(), "tooltip": tooltip()},
        {"unit": "s", "min": 0, "color": {"mode": "palette-classic"},
         "custom": {"drawStyle": "points", "pointSize": 7, "showPoints": "always", "lineWidth": 1, "fillOpacity": 0}},
    ))
    s.append(panel(
        "table", "Sync runs",
        "Every sync run of the site, newest first: trigger, outcome, duration, phase times, updates synchronized, and for a failure its message and HRESULT. Red rows failed: the failure text says what to look for.",
        (0, 12, 24, 9),
        [target("A", 'SELECT "trigger", "outcome", "duration_s", "wsus_s", "site_db_s", "updates_synchronized", "items_updated", '
                     f'"content_version", "failure", "hresult" FROM "sync_run" WHERE $timeFilter AND {SCOPE} ORDER BY time DESC', fmt="table")],
        table_options(),
        {"unit": "none", "custom": {"align": "auto", "inspect": True}},
        [column("Time", unit="dateTimeAsIso", displayName="start"),
         column("outcome", mappings=STATUS_MAPPINGS, custom={"cellOptions": {"type": "color-background"}, "align": "auto", "inspect": False}),
         column("duration_s", unit="dtdurations", displayName="duration"),
         column("wsus_s", unit="dtdurations", displayName="WSUS phase"),
         column("site_db_s", unit="dtdurations", displayName="database phase"),
         column("updates_synchronized", displayName="updates synchronized"),
         column("items_updated", displayName="items updated"),
         column("content_version", displayName="catalog version", decimals=0)],
    ))
    s.append(panel(
        "table", "Status messages",
        "The site's status messages, newest first (6701 started, 6702 completed, 6703 failed, 6704/6705 progress), with their insertion strings. A 6703's strings hold the failure: compare with WsyncMgr.log.",
        (0, 21, 14, 9),
        [target("A", 'SELECT "id", "sev", "component", "istr0", "istr1", "istr2", "istr3", "le" FROM "statmsg" '
                     f'WHERE $timeFilter AND {SCOPE} ORDER BY time DESC LIMIT 500', fmt="table")],
        table_options(),
        {"unit": "none", "custom": {"align": "auto", "inspect": True}},
        [column("Time", unit="dateTimeAsIso", displayName="time"),
         column("sev", mappings=[{"type": "value", "options": {"E": {"text": "error", "color": RED, "index": 0},
                                                              "W": {"text": "warning", "color": ORANGE, "index": 1},
                                                              "I": {"text": "information", "color": GREEN, "index": 2}}}],
                custom={"cellOptions": {"type": "color-text"}, "align": "auto", "inspect": False})],
    ))
    s.append(panel(
        "table", "Version propagation to its children",
        "Each of the site's recent content versions and when each child site reached it. A child that did not reach the newest version within 2 h raises child_lag: check its WsyncMgr.log and the notification's replication.",
        (14, 21, 10, 9),
        [target("A", 'SELECT "version", "reached", "delay_s" FROM "version_propagation" WHERE $timeFilter AND '
                     '"hierarchy" =~ /^$hierarchy$/ AND "parent" =~ /^$site$/ GROUP BY "child" ORDER BY time DESC LIMIT 20', fmt="table")],
        table_options(),
        {"unit": "none", "custom": {"align": "auto", "inspect": False}},
        [column("Time", unit="dateTimeAsIso", displayName="parent reached it"),
         column("delay_s", unit="dtdurations", displayName="child's delay"),
         column("version", decimals=0)],
    ))
    failures = {
        "name": "Failed syncs", "datasource": DS, "enable": True, "hide": False, "iconColor": RED,
        "target": {"refId": "Anno", "query": f'SELECT "failure", "hresult" FROM "sync_run" WHERE $timeFilter AND {SCOPE} AND "outcome" = \'failed\'',
                   "rawQuery": True, "resultFormat": "table"},
        "mappings": {"text": {"source": "field", "value": "failure"}},
    }
    return dashboard(
        "statmsg-site", "statmsg: site detail",
        "One site's software update synchronization: last success, duration against its median, catalog version against its parent's, every run with its phases and failure, its status messages and how its children follow. Failed syncs are marked on every chart.",
        s, "now-30d", ["site"], links=[link("statmsg dashboards", "statmsg")], multi=False, annotations=[failures],
    )


def trends():
    s = []
    per_site = '"hierarchy", "site"'

    def weekly(title, description, grid, query, unit, alias="$tag_hierarchy/$tag_site"):
        return panel("timeseries", title, description, grid, [target("A", query, alias=alias)],
                     {"legend": legend("right"), "tooltip": tooltip()},
                     {"unit": unit, "min": 0, "color": {"mode": "palette-classic"},
                      "custom": {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 0, "showPoints": "always", "spanNulls": True}})
    s.append(weekly("Weekly median sync duration per site",
                    "The median duration of each site's successful syncs, per week. A line that climbs for weeks is a catalog growing faster than its clean-up: decline superseded updates, review products and languages, re-index SUSDB.",
                    (0, 0, 12, 9),
                    f'SELECT median("duration_s") FROM "sync_run" WHERE $timeFilter AND "outcome" = \'succeeded\' AND {SCOPE} GROUP BY time(7d), {per_site} fill(none)', "s"))
    s.append(weekly("Weekly 95th-percentile sync duration per site",
                    "The slow end of each site's successful syncs, per week. When it nears the sync window (or the stall threshold, 2 h by default) the site will start missing syncs: act before the median gets there.",
                    (12, 0, 12, 9),
                    f'SELECT percentile("duration_s", 95) FROM "sync_run" WHERE $timeFilter AND "outcome" = \'succeeded\' AND {SCOPE} GROUP BY time(7d), {per_site} fill(none)', "s"))
    s.append(panel(
        "timeseries", "Updates synchronized per run",
        "How many updates each run synchronized. Steps up follow new products, classifications or languages; a steady climb with durations is the catalog growing.",
        (0, 9, 12, 8),
        [target("A", f'SELECT "updates_synchronized" FROM "sync_run" WHERE $timeFilter AND {SCOPE} GROUP BY {per_site}', alias="$tag_hierarchy/$tag_site")],
        {"legend": legend("right"), "tooltip": tooltip()},
        {"unit": "short", "min": 0, "decimals": 0, "color": {"mode": "palette-classic"},
         "custom": {"drawStyle": "points", "pointSize": 5, "showPoints": "always", "lineWidth": 1, "fillOpacity": 0}},
    ))
    s.append(panel(
        "timeseries", "Runs and failures per week",
        "Sync runs of the shown sites started per week and how many failed. Weeks with failures: the fleet overview and the site detail name the causes; a failing streak also stops WSUS clean-up, which runs only after a success.",
        (12, 9, 12, 8),
        [target("A", f'SELECT count("outcome") AS "runs" FROM "sync_run" WHERE $timeFilter AND {SCOPE} GROUP BY time(7d) fill(0)'),
         target("B", f'SELECT count("outcome") AS "failures" FROM "sync_run" WHERE $timeFilter AND "outcome" = \'failed\' AND {SCOPE} GROUP BY time(7d) fill(0)')],
        {"legend": legend(), "tooltip": tooltip()},
        {"unit": "short", "min": 0, "decimals": 0, "color": {"mode": "palette-classic"},
         "custom": {"drawStyle": "bars", "lineWidth": 1, "fillOpacity": 60, "showPoints": "never"}},
        [{"matcher": {"id": "byName", "options": "failures"},
          "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": RED}}]}],
    ))
    s.append(weekly("Propagation delay per child (weekly median)",
                    "How long each child site took, per week, to reach its parent's new catalog versions (median). Climbing: the child syncs later and later after its parent; check replication and the child's sync duration.",
                    (0, 17, 24, 8),
                    'SELECT median("delay_s") FROM "version_propagation" WHERE $timeFilter AND "hierarchy" =~ /^$hierarchy$/ '
                    'AND "child" =~ /^$site$/ GROUP BY time(7d), "hierarchy", "child" fill(none)', "s", alias="$tag_hierarchy/$tag_child"))
    s.append(panel(
        "timeseries", "Hours with an alert per site per week",
        "From the hourly downsampling of the sites' minute-by-minute health (site_sync_state_1h, kept for good): hours of each week in which the site had any alert. A site that keeps coming back is a capacity or configuration problem, not bad luck: open its site detail and the fleet overview for the causes.",
        (0, 25, 24, 8),
        [target("A", f'SELECT count("alert_count") FROM "site_sync_state_1h" WHERE $timeFilter AND "alert_count" > 0 AND {SCOPE} GROUP BY time(7d), {per_site} fill(0)', alias="$tag_hierarchy/$tag_site")],
        {"legend": legend("right"), "tooltip": tooltip()},
        {"unit": "h", "min": 0, "decimals": 0, "color": {"mode": "palette-classic"},
         "custom": {"drawStyle": "bars", "lineWidth": 1, "fillOpacity": 60, "showPoints": "never"}},
    ))
    return dashboard(
        "statmsg-trends", "statmsg: capacity trends",
        "Synchronization over months, for capacity planning: weekly durations per site (median and 95th percentile), updates per run, runs and failures per week, how long children take to follow, and hours with an alert per site. Weeks start on Thursday (InfluxDB's 7-day buckets).",
        s, "now-1y", ["trends"], links=[link("statmsg dashboards", "statmsg")],
    )


DASHBOARDS = {"fleet.json": fleet, "site.json": site, "trends.json": trends}


def render(build):
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main():
    for name, build in DASHBOARDS.items():
        with open(os.path.join(HERE, name), "w") as f:
            f.write(render(build))
        print(f"wrote grafana/dashboards/{name}")


if __name__ == "__main__":
    main()
