#!/usr/bin/env bash
# Checks the monitoring configuration in tuning/monitoring with the real tools:
#   - `promtool check rules` on the alerting rules and `promtool test rules` on their unit tests;
#   - `promtool check config` on the example Prometheus configuration;
#   - the Grafana dashboard: valid JSON with the structure Grafana needs (unique panel ids and
#     uid, grid positions, a query per panel), and every panel query is valid PromQL (each is
#     compiled as a recording rule by `promtool check rules`).
# Which metrics those queries name is checked against the exporter's real page by
# coldpath/tests/metrics_engine.rs. Needs promtool (scripts/setup.sh installs Debian's
# prometheus) and python3.
set -euo pipefail
cd "$(dirname "$0")/../tuning/monitoring"

command -v promtool >/dev/null || { echo "check-monitoring: promtool not found (run scripts/setup.sh)" >&2; exit 1; }

promtool check rules alerts.yml
promtool test rules alerts_test.yml
promtool check config prometheus.yml

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 - grafana-dashboard.json "$tmp/dashboard-rules.yml" <<'PY'
import json, sys

path, out = sys.argv[1], sys.argv[2]
with open(path) as f:
    d = json.load(f)
errors = []
for key in ("title", "uid", "panels", "schemaVersion", "templating"):
    if key not in d:
        errors.append(f"missing top-level key {key!r}")
ids, exprs = set(), []
def walk(panels):
    for p in panels:
        pid = p.get("id")
        if pid in ids:
            errors.append(f"duplicate panel id {pid}")
        ids.add(pid)
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in ("h", "w", "x", "y")) or g["x"] + g["w"] > 24:
            errors.append(f"panel {pid} ({p.get('title')}): bad gridPos {g}")
        if p.get("type") == "row":
            walk(p.get("panels", []))
            continue
        targets = p.get("targets") or []
        if not targets:
            errors.append(f"panel {pid} ({p.get('title')}) has no query")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs):
            errors.append(f"panel {pid}: duplicate refId")
        for t in targets:
            e = t.get("expr", "").strip()
            if not e:
                errors.append(f"panel {pid} target {t.get('refId')}: empty expr")
            exprs.append((pid, t.get("refId"), e))
walk(d.get("panels", []))
if errors:
    sys.exit("grafana-dashboard.json:\n  " + "\n  ".join(errors))
# Grafana variables become what they select at query time: `$instance` a regex.
with open(out, "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for pid, ref, e in exprs:
        e = e.replace("$instance", ".*")
        f.write(f"      - record: dashboard:panel_{pid}_{ref}\n        expr: {json.dumps(e)}\n")
print(f"grafana-dashboard.json: {len(ids)} panels, {len(exprs)} queries")
PY
promtool check rules "$tmp/dashboard-rules.yml"
echo "check-monitoring: ok"
