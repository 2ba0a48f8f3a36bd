"""Reads a Prometheus text exposition on standard input with prometheus_client's own parser and
prints its samples as JSON: [{"family", "type", "name", "labels", "value"}, ...]. The tests read
/metrics through it, so that what they check is what a real scraper understands."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        samples.append({"family": family.name, "type": family.type, "name": sample.name, "labels": sample.labels, "value": sample.value})
json.dump(samples, sys.stdout)
