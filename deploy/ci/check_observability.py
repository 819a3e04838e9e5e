#!/usr/bin/env python3
"""Offline checks of the dashboard and the alert rules (deploy/ci-check.sh runs this).

    check_observability.py REPO METRICS.txt QUERIES_OUT.yml

  * deploy/grafana/kmsgate.json is valid JSON and a sane dashboard: a uid and title, unique
    panel ids, every panel inside the 24-column grid, with a datasource and queries;
  * every metric name the dashboard or alerts.yml uses is one a running gateway exposes
    (METRICS.txt is a real scrape of /metrics), and every metric family the gateway exposes is
    on the dashboard;
  * every alert has a runbook annotation pointing at a heading of docs/operations.md, is
    listed there, and is exercised by alerts_test.yml;
  * writes every dashboard query, with Grafana's variables replaced, as recording rules to
    QUERIES_OUT.yml, so that `promtool check rules` parses each one as PromQL.
"""

import json
import re
import sys

import yaml

errors = []


def fail(message):
    errors.append(message)


def names_in(expr):
    # The gateway's own families and the standard process_* ones.
    return set(re.findall(r"\b((?:kmsgate|process)_[a-z0-9_]+)", expr))


def main():
    repo, metrics_file, queries_out = sys.argv[1:4]
    # The families a running gateway exposes, and the sample names they allow.
    families, samples = {}, set()
    for line in open(metrics_file):
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            families[m.group(1)] = m.group(2)
        elif line.strip() and not line.startswith("#"):
            samples.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    allowed = set(samples)
    for name, kind in families.items():
        if kind == "histogram":
            allowed |= {name + "_bucket", name + "_sum", name + "_count"}
    if not families:
        fail(f"{metrics_file}: no metric families")

    # The dashboard.
    path = f"{repo}/deploy/grafana/kmsgate.json"
    try:
        dash = json.load(open(path))
    except ValueError as e:
        print(f"  FAIL {path}: not valid JSON: {e}")
        sys.exit(1)
    for key in ("uid", "title", "panels", "templating", "schemaVersion"):
        if key not in dash:
            fail(f"dashboard: no {key}")
    ids, queries, used = set(), [], set()
    for panel in dash.get("panels", []):
        pid = panel.get("id")
        if pid in ids:
            fail(f"dashboard: duplicate panel id {pid}")
        ids.add(pid)
        g = panel.get("gridPos", {})
        if g.get("x", 0) + g.get("w", 0) > 24 or g.get("w", 0) <= 0 or g.get("h", 0) <= 0:
            fail(f"dashboard: panel {pid} ({panel.get('title')}) lies outside the grid: {g}")
        if panel.get("type") == "row":
            continue
        if not panel.get("datasource") or not panel.get("targets"):
            fail(f"dashboard: panel {pid} ({panel.get('title')}) has no datasource or no queries")
        for t in panel.get("targets", []):
            expr = t.get("expr", "")
            if not expr:
                fail(f"dashboard: panel {pid} query {t.get('refId')} is empty")
            queries.append((pid, t.get("refId", "A"), expr))
            used |= names_in(expr)
    for pid, ref, expr in queries:
        for name in names_in(expr):
            if name not in allowed:
                fail(f"dashboard: panel {pid} query {ref} uses {name}, which the gateway does not expose")
    shown = {n for n in families if any(u == n or u.startswith(n + "_") for u in used)}
    for name in sorted(set(families) - shown):
        fail(f"dashboard: the gateway exposes {name}, which no panel shows")

    # Grafana variables → PromQL, for promtool.
    def plain(expr):
        expr = expr.replace("$__rate_interval", "5m").replace("$__range", "1h")
        return re.sub(r"\$\{?(job|instance)\}?", ".*", expr)

    rules = [{"record": f"dashboard:panel{pid}:{ref}", "expr": plain(expr)} for pid, ref, expr in queries]
    yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, open(queries_out, "w"))

    # The alerts: metric names, runbooks, tests, the operator's table.
    alerts = yaml.safe_load(open(f"{repo}/deploy/prometheus/alerts.yml"))
    tests = yaml.safe_load(open(f"{repo}/deploy/prometheus/alerts_test.yml"))
    ops = open(f"{repo}/docs/operations.md").read()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.*)$", ops, re.M)}
    tested = {t["alertname"] for test in tests["tests"] for t in test.get("alert_rule_test", [])
              if t.get("exp_alerts")}
    count = 0
    for group in alerts["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert")
            if not name:
                continue
            count += 1
            for metric in names_in(rule["expr"]):
                if metric not in allowed:
                    fail(f"alert {name} uses {metric}, which the gateway does not expose")
            runbook = rule.get("annotations", {}).get("runbook", "")
            m = re.match(r"docs/operations\.md#(.+)$", runbook)
            if not m or m.group(1) not in anchors:
                fail(f"alert {name}: runbook {runbook!r} is no heading of docs/operations.md")
            if name not in tested:
                fail(f"alert {name}: alerts_test.yml never expects it to fire")
            if f"`{name}`" not in ops:
                fail(f"alert {name}: not in docs/operations.md's alert table")
            if "severity" not in rule.get("labels", {}):
                fail(f"alert {name}: no severity label")
    for name in families:
        if f"`{name}" not in ops:
            fail(f"metric {name}: not in docs/operations.md's metric table")

    for e in errors:
        print(f"  FAIL {e}")
    if errors:
        sys.exit(1)
    print(f"  dashboard: {len(dash['panels'])} panels, {len(queries)} queries, every one of the "
          f"{len(families)} metric families shown; {count} alerts, each tested and with a runbook")


if __name__ == "__main__":
    main()
