"""The benchmark's outputs: ``results.json`` (figures and targets), ``results.details.json``
(everything measured) and the summary printed at the end."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from bench.admin import p95_values, print_admin
from bench.admin import results_section as admin_section
from bench.http_check import print_http, targets_of
from bench.http_check import results_section as http_section
from bench.kinds import Kinds
from bench.orders_check import ORDERS_ZERO_KEYS, print_orders
from bench.orders_check import results_section as orders_section
from bench.plan import (
    TARGET_ADMIN_P95_MS,
    TARGET_EMAILS_PER_S,
    TARGET_LATENCY_FACTOR,
    TARGET_RATIO,
    TARGET_REMINDER_LATENESS_P99_S,
    TARGET_RSS_MB,
    Plan,
)
from bench.reminders import results_section as reminders_section

#: the lifecycle parts: results key and what it is called in the summary
LIFECYCLES = (("lifecycle", "SQLite"), ("lifecycle_postgres", "PostgreSQL"))
LIFECYCLE_KEYS = (
    "carts_per_s",
    "floor_carts_per_s",
    "ratio",
    "update_p50_ms",
    "update_p99_ms",
    "floor_update_p50_ms",
    "floor_update_p99_ms",
)


def environment(temporal: str, plan: Plan, quick: bool, only: str | None) -> dict[str, Any]:
    try:
        cli = subprocess.run(
            [temporal, "--version"], capture_output=True, text=True, check=False, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        cli = "unknown"
    return {
        "cpu_count": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "temporalio": metadata.version("temporalio"),
        "temporal_cli": cli,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "only": only,
        "plan": dataclasses.asdict(plan),
    }


def lifecycle_figures(lifecycle: dict[str, Any] | None) -> dict[str, Any]:
    """The ``results.json`` figures of one lifecycle part (``None`` where it did not run)."""
    out: dict[str, Any] = dict.fromkeys(LIFECYCLE_KEYS)
    if lifecycle is None:
        return out
    rate = lifecycle["throughput_median"][Kinds.LIFECYCLE]
    floor_rate = lifecycle["throughput_median"][Kinds.FLOOR]
    lat, floor_lat = lifecycle["latency"][Kinds.LIFECYCLE], lifecycle["latency"][Kinds.FLOOR]
    out.update(
        carts_per_s=rate,
        floor_carts_per_s=floor_rate,
        ratio=round(rate / floor_rate, 3) if floor_rate else None,
        update_p50_ms=lat["update_p50_ms"],
        update_p99_ms=lat["update_p99_ms"],
        floor_update_p50_ms=floor_lat["update_p50_ms"],
        floor_update_p99_ms=floor_lat["update_p99_ms"],
    )
    return out


def target(value: Any, limit: Any, op: str) -> dict[str, Any]:
    met = None
    if value is not None and limit is not None:
        met = value >= limit if op == ">=" else value <= limit
    return {"value": value, "target": f"{op} {limit}" if limit is not None else op, "met": met}


def build_results(
    lifecycles: dict[str, dict[str, Any] | None],
    idle: dict[str, Any] | None,
    env: dict[str, Any],
    reminders: dict[str, Any] | None = None,
    admin: dict[str, Any] | None = None,
    orders: dict[str, Any] | None = None,
    http: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``lifecycles``: the measured parts by results key (``lifecycle``,
    ``lifecycle_postgres``), ``None`` for a part that did not run."""
    results: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    for key, _name in LIFECYCLES:
        lc = results[key] = lifecycle_figures(lifecycles.get(key))
        targets[f"{key}.ratio"] = target(lc["ratio"], TARGET_RATIO, ">=")
        for p in ("p50", "p99"):
            floor_value = lc[f"floor_update_{p}_ms"]
            limit = (
                round(floor_value * TARGET_LATENCY_FACTOR, 1) if floor_value is not None else None
            )
            targets[f"{key}.update_{p}_ms"] = target(lc[f"update_{p}_ms"], limit, "<=")
            targets[f"{key}.update_{p}_ms"]["rule"] = f"<= {TARGET_LATENCY_FACTOR} x floor"
    results["idle"] = {
        "open_carts": idle["open_carts"] if idle else None,
        "worker_rss_mb": idle["rss_mb"] if idle else None,
    }
    targets["idle.worker_rss_mb"] = target(results["idle"]["worker_rss_mb"], TARGET_RSS_MB, "<=")
    rem = results["reminders"] = reminders_section(reminders)
    targets["reminders.emails_per_s"] = target(rem["emails_per_s"], TARGET_EMAILS_PER_S, ">=")
    targets["reminders.duplicates"] = target(rem["duplicates"], 0, "<=")
    targets["reminders.lateness_p99_s"] = target(
        rem["lateness_p99_s"], TARGET_REMINDER_LATENESS_P99_S, "<="
    )
    targets["reminders.carts_lost"] = target(rem["carts_lost"], 0, "<=")
    results["orders"] = orders_section(orders)
    for key in ORDERS_ZERO_KEYS:  # (the issue names no figure for the throughput)
        targets[f"orders.{key}"] = target(results["orders"][key], 0, "<=")
    results["http"] = http_section(http)
    targets.update(targets_of(results["http"], target))
    results["admin"] = admin_section(admin)
    for key, value in p95_values(results["admin"]).items():
        targets[key] = target(value, TARGET_ADMIN_P95_MS, "<=")
    targets["all_met"] = _all_met(targets)
    results["targets"] = targets
    results["environment"] = env
    return results


def _all_met(targets: dict[str, Any]) -> bool:
    return all(t["met"] for key, t in targets.items() if key != "all_met" and isinstance(t, dict))


#: each part: its ``results.json`` section (also its targets' prefix) and its keys in
#: ``results.details.json``
PART_OUTPUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "lifecycle": ("lifecycle", ("lifecycle", "diagnostics")),
    "lifecycle_postgres": ("lifecycle_postgres", ("lifecycle_postgres",)),
    "idle": ("idle", ("idle",)),
    "reminders": ("reminders", ("reminders",)),
    "orders": ("orders", ("orders",)),
    "http": ("http", ("http",)),
    "admin": ("admin", ("admin",)),
}


def _leaves(figures: dict[str, Any]) -> list[Any]:
    """The values of a section, nested sections' (``admin``) included."""
    out: list[Any] = []
    for value in figures.values():
        out += _leaves(value) if isinstance(value, dict) else [value]
    return out


def merge_previous(
    output: Path, results: dict[str, Any], details: dict[str, Any], parts_run: list[str]
) -> list[str]:
    """The parts not run this time (``--only``) keep their figures, targets and details
    from the files at ``output`` (if they have any); ``environment.kept_from_previous``
    says from which run (date and mode). ``all_met`` is computed again over every target.
    The parts kept."""
    try:
        previous = json.loads(output.read_text())
    except (OSError, ValueError):
        return []
    details_path = output.with_name(output.stem + ".details.json")
    try:
        previous_details = json.loads(details_path.read_text())
    except (OSError, ValueError):
        previous_details = {}
    prev_env = previous.get("environment", {})
    earlier = prev_env.get("kept_from_previous", {})
    kept: dict[str, Any] = {}
    targets = results["targets"]
    for part, (section, detail_keys) in PART_OUTPUTS.items():
        figures = previous.get(section)
        if part in parts_run or not isinstance(figures, dict):
            continue
        if all(value is None for value in _leaves(figures)):
            continue
        results[section] = figures
        for key in [key for key in targets if key.startswith(f"{section}.")]:
            del targets[key]  # this run's (not measured) ones: the previous run's instead
        for key, value in previous.get("targets", {}).items():
            if key.startswith(f"{section}."):
                targets[key] = value
        for key in detail_keys:
            if key in previous_details:
                details[key] = previous_details[key]
        kept[part] = earlier.get(part) or {
            "date": prev_env.get("date"),
            "mode": prev_env.get("mode"),
        }
    if kept:
        targets.pop("all_met", None)  # (re-added last)
        targets["all_met"] = _all_met(targets)
        results["environment"]["kept_from_previous"] = kept
        details["environment"]["kept_from_previous"] = kept
    return list(kept)


def write_outputs(
    output: Path, results: dict[str, Any], details: dict[str, Any]
) -> tuple[Path, Path]:
    output.write_text(json.dumps(results, indent=2) + "\n")
    details_path = output.with_name(output.stem + ".details.json")
    details_path.write_text(json.dumps(details, indent=2, default=str) + "\n")
    return output, details_path


def _print_reminders(results: dict[str, Any], details: dict[str, Any], mark: Any) -> None:
    rem = results.get("reminders") or {}
    if rem.get("emails_per_s") is None and rem.get("carts_lost") is None:
        return
    kept = results["environment"].get("kept_from_previous", {}).get("reminders")
    print("-" * 78)
    print(
        f"reminders    {rem['carts']} carts abandoned within {rem['abandon_window_s']} s"
        + (f" (kept from the run of {kept['date']})" if kept else "")
    )
    print(
        f"             {rem['emails_per_s']} e-mails/s (>= {TARGET_EMAILS_PER_S:.0f}:"
        f" {mark('reminders.emails_per_s')}), {rem['carts_per_s']} carts/s end to end"
    )
    print(
        f"             lateness p50 {rem['lateness_p50_s']} s, p99 {rem['lateness_p99_s']} s"
        f" (<= {TARGET_REMINDER_LATENESS_P99_S:.0f}: {mark('reminders.lateness_p99_s')}),"
        f" max {rem['lateness_max_s']} s"
    )
    print(
        f"             duplicates {rem['duplicates']} ({mark('reminders.duplicates')}), carts"
        f" lost {rem['carts_lost']} ({mark('reminders.carts_lost')}), worker RSS"
        f" {rem['worker_rss_mb']} MB"
    )
    if rem.get("floor_emails_per_s") is not None:
        print(
            f"             floor (same worker, relay and due times): {rem['floor_emails_per_s']}"
            f" e-mails/s, lateness p99 {rem['floor_lateness_p99_s']} s; the carts"
            f" {rem['emails_per_s_vs_floor']} x the floor's e-mails/s"
        )
    part = details.get("reminders", {})
    cpu = part.get("cpu_ms_per_email")
    if cpu:
        print(
            f"             cpu ms/e-mail server {cpu['server']}, worker {cpu['worker']}, bench"
            f" (client + SMTP server) {cpu['client']}, other {cpu['other']}"
        )
    steps = part.get("breakdown", {}).get("steps", {})
    if steps:
        print(
            "             workflow tasks' queue wait per cart p50"
            f" {steps['workflow_task_queue_s']['p50']} s; sticky timeouts per cart"
            f" {steps['sticky_timeouts']['mean']} (each: a full replay)"
        )
    probe, replay = part.get("send_probe"), part.get("replay_probe")
    if probe and replay:
        print(
            f"             alone: send_reminder {probe['send_reminder_cpu_ms']} ms CPU (render"
            f" {probe['compose_cpu_ms']}, SMTP both ends {probe['smtp_cpu_ms_both_ends']}),"
            f" plan {probe['plan_reminders_cpu_ms']}, projection {probe['project_cart_cpu_ms']};"
            f" workflow code {replay['reminder_phase_cpu_ms']} ms"
        )


def print_summary(results: dict[str, Any], details: dict[str, Any]) -> None:
    idle, targets = results["idle"], results["targets"]

    def mark(key: str) -> str:
        met = targets.get(key, {}).get("met")
        return {True: "met", False: "MISSED", None: "n/a"}[met]

    print()
    print("=" * 78)
    print(
        "cartkeeper benchmark",
        results["environment"]["date"],
        f"({results['environment']['mode']}, {results['environment']['cpu_count']} CPUs)",
    )
    for key, name in LIFECYCLES:
        lc = results[key]
        if lc["carts_per_s"] is None:
            if key in details.get("skipped", {}):
                print("-" * 78)
                print(f"{key}: not run ({details['skipped'][key]})")
            continue
        print("-" * 78)
        print(f"{key} (read model on {name})")
        print(
            f"throughput   lifecycle {lc['carts_per_s']:7.2f} carts/s   floor "
            f"{lc['floor_carts_per_s']:7.2f} carts/s   ratio {lc['ratio']:.2f} "
            f"(>= {TARGET_RATIO}: {mark(f'{key}.ratio')})"
        )
        for p in ("p50", "p99"):
            print(
                f"update {p}   lifecycle {lc[f'update_{p}_ms']:7.1f} ms        floor "
                f"{lc[f'floor_update_{p}_ms']:7.1f} ms        "
                f"(<= {TARGET_LATENCY_FACTOR}x: {mark(f'{key}.update_{p}_ms')})"
            )
        part = details.get(key, {})
        for kind, cpu in (part.get("cpu_ms_per_cart") or {}).items():
            print(
                f"cpu ms/cart  {kind:9s} server {cpu['server']:6.1f}  worker "
                f"{cpu['worker']:6.1f}  client {cpu['client']:6.1f}"
            )
        other = part.get("other_cpu_share")
        if other is not None:
            print(f"note         CPU used by processes not ours during these runs: {other:.0%}")
    hist = details.get("diagnostics", {}).get("histories", {})
    if hist:
        print("-" * 78)
    for name, h in hist.items():
        if "events" in h:
            print(
                f"history      {name:38s} {h['events']:3d} events, {h['bytes']:6d} bytes, "
                f"{h['workflow_tasks']} workflow tasks"
            )
    if idle["worker_rss_mb"] is not None:
        print("-" * 78)
        print(
            f"idle         {idle['open_carts']} open carts, worker RSS "
            f"{idle['worker_rss_mb']:.1f} MB (<= {TARGET_RSS_MB:.0f}: "
            f"{mark('idle.worker_rss_mb')})"
        )
        info = details.get("idle", {})
        if info.get("open_carts", 0) < info.get("carts", 0):
            print(f"             WARNING: {info['carts']} carts were requested")
        cpu = info.get("create_cpu_ms_per_cart", {})
        print(
            f"             empty worker {info.get('rss_mb_empty_worker')} MB; created "
            f"{info.get('create_per_s')}/s; CPU ms per created cart: server "
            f"{cpu.get('server')}, worker {cpu.get('worker')}"
        )
    _print_reminders(results, details, mark)
    print_orders(results, details, mark)
    print_http(results, details, mark)
    print_admin(results, details, mark)
    print("-" * 78)
    print(
        "all targets met"
        if targets["all_met"]
        else "targets MISSED or not measured: "
        + ", ".join(k for k, t in targets.items() if isinstance(t, dict) and t["met"] is not True)
    )
    print("=" * 78)
