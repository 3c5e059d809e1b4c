#!/usr/bin/env python3
"""The checker must catch what Grafana would refuse or mis-evaluate: each mistake below is made
in a copy of the provisioning files, and `grafana/check` must fail naming it. Run by .ci/run."""

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join("alerting", "statmsg-rules.yml")


def run_check(folder):
    dashboards = os.path.join(os.path.dirname(folder), "dashboards")
    command = [os.path.join(HERE, "check"), "--provisioning", folder, "--dashboards", dashboards]
    out = subprocess.run(command, capture_output=True, text=True)
    return out.returncode, out.stderr


class CheckCatchesMistakes(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.folder = os.path.join(self.dir, "provisioning")
        shutil.copytree(os.path.join(HERE, "provisioning"), self.folder)
        # The dashboards without build.py: a mutated copy must fail for its mistake only.
        self.dashboards = os.path.join(self.dir, "dashboards")
        shutil.copytree(os.path.join(HERE, "dashboards"), self.dashboards, ignore=shutil.ignore_patterns("build.py", "__pycache__"))
        with open(os.path.join(self.folder, RULES)) as f:
            self.doc = yaml.safe_load(f)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def broken(self, mutate):
        doc = copy.deepcopy(self.doc)
        mutate(doc["groups"][0]["rules"])
        with open(os.path.join(self.folder, RULES), "w") as f:
            yaml.safe_dump(doc, f)
        return run_check(self.folder)

    def broken_dashboard(self, mutate):
        path = os.path.join(self.dashboards, "fleet.json")
        with open(path) as f:
            dashboard = json.load(f)
        mutate(dashboard)
        with open(path, "w") as f:
            json.dump(dashboard, f)
        return run_check(self.folder)

    def assert_dashboard_refused(self, mutate, expected):
        rc, stderr = self.broken_dashboard(mutate)
        self.assertEqual(rc, 1, stderr)
        self.assertIn(expected, stderr)

    def test_a_panel_without_description(self):
        self.assert_dashboard_refused(lambda d: d["panels"][0].pop("description"), "needs a title and a description")

    def test_a_panel_without_unit(self):
        self.assert_dashboard_refused(lambda d: d["panels"][8]["fieldConfig"]["defaults"].pop("unit"), "no unit")

    def test_a_panel_without_queries(self):
        self.assert_dashboard_refused(lambda d: d["panels"][3].update(targets=[]), "no queries")

    def test_a_variable_that_does_not_follow_the_time_range(self):
        self.assert_dashboard_refused(lambda d: d["templating"]["list"][1].update(refresh=1), "refresh on time range change")

    def test_two_data_source_variables(self):
        def mutate(d):
            d["templating"]["list"].append(dict(d["templating"]["list"][0], name="other"))
        self.assert_dashboard_refused(mutate, "exactly one data source variable")

    def test_options_outside_the_panel_schema(self):
        self.assert_dashboard_refused(lambda d: d["panels"][0]["options"].update(graphMode="sparkles"), "'sparkles' is not one of")

    def test_a_link_to_a_dashboard_that_does_not_exist(self):
        def mutate(d):
            d["panels"][8]["fieldConfig"]["overrides"][0]["properties"][0]["value"][0]["url"] = "/d/nowhere/x"
        self.assert_dashboard_refused(mutate, "links to dashboard uid 'nowhere'")

    def test_a_dashboard_outside_the_dashboard_schema(self):
        self.assert_dashboard_refused(lambda d: d.update(schemaVersion="42"), "schemaVersion")

    def assert_refused(self, mutate, expected):
        rc, stderr = self.broken(mutate)
        self.assertEqual(rc, 1, stderr)
        self.assertIn(expected, stderr)

    def test_the_shipped_files_pass(self):
        rc, stderr = run_check(self.folder)
        self.assertEqual(rc, 0, stderr)

    def test_a_query_without_relative_time_range(self):
        self.assert_refused(lambda r: r[0]["data"][0].pop("relativeTimeRange"), "no relativeTimeRange")

    def test_a_template_variable_in_an_alert_query(self):
        def mutate(rules):
            m = rules[1]["data"][0]["model"]
            m["query"] = m["query"].replace("WHERE", "WHERE \"site\" =~ /^$site$/ AND")
        self.assert_refused(mutate, "cannot use template variables ($site)")

    def test_interval_in_an_alert_query(self):
        def mutate(rules):
            m = rules[6]["data"][0]["model"]
            m["query"] = m["query"].replace("time(1h)", "time($__interval)")
        self.assert_refused(mutate, "$__interval in an alert query")

    def test_two_fields_in_one_alert_query(self):
        def mutate(rules):
            m = rules[2]["data"][0]["model"]
            m["query"] = m["query"].replace('last("active")', 'last("active"), last("since_ms")')
        self.assert_refused(mutate, "one field per alert query")

    def test_a_reduce_that_lets_nan_fire(self):
        self.assert_refused(lambda r: r[3]["data"][1]["model"].pop("settings"), "without settings.mode dropNN")

    def test_a_duplicate_uid(self):
        def mutate(rules):
            rules[4]["uid"] = rules[5]["uid"]
        self.assert_refused(mutate, "uid used twice")

    def test_an_unknown_data_source(self):
        def mutate(rules):
            rules[6]["data"][0]["datasourceUid"] = "nope"
        self.assert_refused(mutate, "data source uid 'nope' is not provisioned")

    def test_a_condition_that_is_no_refid(self):
        def mutate(rules):
            rules[7]["condition"] = "Z"
        self.assert_refused(mutate, "condition 'Z' is not one of")

    def test_an_expression_outside_grafanas_schema(self):
        def mutate(rules):
            rules[0]["data"][1]["model"]["reducer"] = "p95"
        self.assert_refused(mutate, "'p95' is not one of")

    def test_an_unknown_no_data_state(self):
        def mutate(rules):
            rules[0]["noDataState"] = "Silence"
        self.assert_refused(mutate, "noDataState")


if __name__ == "__main__":
    sys.exit(unittest.main())
