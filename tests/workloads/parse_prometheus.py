#!/usr/bin/env python3
"""parse_prometheus.py < BODY: parse a /metrics body with the Prometheus client library's
text-format parser (Debian's python3-prometheus-client) and print its metric families as
JSON: [{"name", "type", "samples": [{"name", "labels", "value"}]}]. A body the parser
rejects makes it exit non-zero with the parser's message."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    families = [
        {
            "name": family.name,
            "type": family.type,
            "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
        }
        for family in text_string_to_metric_families(sys.stdin.read())
    ]
    json.dump(families, sys.stdout)


main()
