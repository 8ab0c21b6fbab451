"""Writes the Grafana dashboards shipped with the charts (run after changing a panel; a test checks they match).

``charts/asya-actor/dashboards/asya-actor.json`` is one actor's dashboard: the chart replaces the
``__ACTOR__`` placeholder with the actor name (``__ACTOR_UID__`` with a uid of at most 40 characters) (a plain string replace, no template execution).
``charts/asya-controller/dashboards/asya-mesh.json`` shows every actor of the mesh side by side.
Every expression uses only metrics the sidecar and controller export (see docs/operations.md), plus
``kube_pod_container_status_restarts_total`` from kube-state-metrics for container restarts.

Usage: ``python ci/gen_dashboards.py [--check]``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACTOR_FILE = ROOT / "charts" / "asya-actor" / "dashboards" / "asya-actor.json"
MESH_FILE = ROOT / "charts" / "asya-controller" / "dashboards" / "asya-mesh.json"
RATE = "$__rate_interval"


def _panel(pid: int, title: str, targets: list[tuple[str, str]], unit: str, x: int, y: int,
           kind: str = "timeseries", w: int = 12, h: int = 8) -> dict:
    return {
        "id": pid, "type": kind, "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
        "targets": [{"refId": chr(65 + i), "expr": expr.replace("{}", ""), "legendFormat": legend,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    for i, (expr, legend) in enumerate(targets)],
    }


def _quantiles(metric: str, sel: str, by: str) -> list[tuple[str, str]]:
    group = f"le{', ' + by if by else ''}"
    prefix = f"{{{{{by}}}}} " if by else ""
    return [(f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{sel}[{RATE}])))", f"{prefix}p{int(q * 100)}")
            for q in (0.5, 0.99)]


def _panels(sel: str, by: str) -> list[dict]:
    """The shared panel set; ``sel`` is the label selector, ``by`` the per-series label ('' or 'actor')."""
    b = f"sum by ({by}) " if by else "sum "
    lb = f"{{{{{by}}}}}" if by else ""
    sel_retry = sel[:-1] + ', outcome="retried"}' if sel != "{}" else '{outcome="retried"}'
    rows = [
        ("Throughput (messages/s by outcome)",
         [(f"sum by (outcome{', ' + by if by else ''}) (rate(asya_messages_processed_total{sel}[{RATE}]))",
           f"{lb} {{{{outcome}}}}".strip())], "ops"),
        ("Received (messages/s)", [(f"{b}(rate(asya_messages_received_total{sel}[{RATE}]))", lb or "received")], "ops"),
        ("Handler time p50 / p99 (per hop)", _quantiles("asya_handler_duration_seconds", sel, by), "s"),
        ("Queue wait p50 / p99 (per hop)", _quantiles("asya_queue_wait_seconds", sel, by), "s"),
        ("Publish time p50 / p99", _quantiles("asya_publish_duration_seconds", sel, by), "s"),
        ("Errors by type (failed attempts/s)",
         [(f"sum by (type{', ' + by if by else ''}) (rate(asya_handler_errors_total{sel}[{RATE}]))",
           f"{lb} {{{{type}}}}".strip())], "ops"),
        ("Retries (scheduled/s)", [(f"{b}(rate(asya_messages_processed_total{sel_retry}[{RATE}]))", lb or "retries")],
         "ops"),
        ("Sent to error-end (envelopes/s)",
         [(f"{b}(rate(asya_messages_published_total{sel[:-1] + ', ' if sel != '{}' else '{'}destination=\"error-end\"}}"
           f"[{RATE}]))", lb or "error-end")], "ops"),
        ("DLQ depth", [(f"{b}(asya_dlq_depth{sel})", lb or "dead letters")], "short"),
        ("DLQ oldest message age", [(f"max{' by (' + by + ')' if by else ''} (asya_dlq_oldest_age_seconds{sel})",
                                     lb or "oldest")], "s"),
        ("Queue depth vs replicas",
         [(f"{b}(asya_queue_depth{sel})", f"{lb} queue depth".strip()),
          (f"count{' by (' + by + ')' if by else ''} (asya_messages_in_flight{sel})", f"{lb} replicas".strip())],
         "short"),
        ("In flight", [(f"{b}(asya_messages_in_flight{sel})", lb or "in flight")], "short"),
        ("Runtime restarts",
         [(f"sum by (reason{', ' + by if by else ''}) (increase(asya_runtime_restarts_total{sel}[{RATE}]))",
           f"{lb} sidecar: {{{{reason}}}}".strip()),
          (f"sum by (pod) (increase(kube_pod_container_status_restarts_total{{container=\"asya-runtime\"}}[{RATE}]))",
           "kubelet: {{pod}}")], "short"),
        ("FLY chunks streamed (/s)", [(f"{b}(rate(asya_fly_chunks_total{sel}[{RATE}]))", lb or "chunks")], "ops"),
    ]
    return [_panel(i + 1, title, targets, unit, x=12 * (i % 2), y=8 * (i // 2)) for i, (title, targets, unit)
            in enumerate(rows)]


def _dashboard(uid: str, title: str, panels: list[dict], tags: list[str]) -> dict:
    return {
        "uid": uid, "title": title, "tags": tags, "editable": True, "schemaVersion": 39, "version": 1,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s", "timezone": "browser",
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Data source", "current": {}, "hide": 0}]},
        "annotations": {"list": []},
        "panels": panels,
    }


def actor_dashboard() -> dict:
    """One actor (``__ACTOR__`` is replaced by the chart)."""
    return _dashboard("__ACTOR_UID__", "Asya actor __ACTOR__", _panels('{actor="__ACTOR__"}', ""),
                      ["asya", "asya-actor"])


def mesh_dashboard() -> dict:
    """Every actor, plus the controller and tracing health."""
    panels = _panels("{}", "actor")
    y = 8 * ((len(panels) + 1) // 2)
    extra = [
        ("Controller: drifted actors", [("max(asya_controller_drifted_actors)", "drifted")], "short"),
        ("Controller: reconciles/s by outcome",
         [(f"sum by (outcome) (rate(asya_controller_reconciles_total[{RATE}]))", "{{outcome}}")], "ops"),
        ("Controller: leader replicas", [("sum(asya_controller_leader)", "leaders")], "short"),
        ("Tracing: spans dropped/s", [(f"sum by (reason) (rate(asya_trace_spans_dropped_total[{RATE}]))",
                                       "{{reason}}")], "ops"),
    ]
    for i, (title, targets, unit) in enumerate(extra):
        panels.append(_panel(len(panels) + 1, title, targets, unit, x=12 * (i % 2), y=y + 8 * (i // 2)))
    return _dashboard("asya-mesh", "Asya mesh", panels, ["asya"])


def render() -> dict[Path, str]:
    """File -> JSON text of every dashboard."""
    return {path: json.dumps(board, indent=2) + "\n"
            for path, board in ((ACTOR_FILE, actor_dashboard()), (MESH_FILE, mesh_dashboard()))}


def main(argv: list[str]) -> int:
    """Writes the files, or with ``--check`` exits 1 when a committed file differs."""
    stale = []
    for path, text in render().items():
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale dashboards (run python ci/gen_dashboards.py):", *stale, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
