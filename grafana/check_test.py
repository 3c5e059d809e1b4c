#!/usr/bin/env python3
"""The checker must catch what Grafana would refuse or mis-evaluate: each mistake below is made
in a copy of the provisioning files, and `grafana/check` must fail naming it. Run by .ci/run."""

import copy
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
    out = subprocess.run([os.path.join(HERE, "check"), "--provisioning", folder], capture_output=True, text=True)
    return out.returncode, out.stderr


class CheckCatchesMistakes(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.folder = os.path.join(self.dir, "provisioning")
        shutil.copytree(os.path.join(HERE, "provisioning"), self.folder)
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
