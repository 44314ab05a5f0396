"""prefect.yaml (work-pool deployments) and `prepflow serve` describe the same deployments."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml

from flows.orchestration.serve import deployments

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> list[dict[str, Any]]:
    return list(yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"])


def test_every_entrypoint_is_a_flow_of_the_declared_name() -> None:
    """Each entrypoint file:function exists in flows/ and is a Prefect flow."""
    for item in _declared():
        path, function = item["entrypoint"].split(":")
        assert (ROOT / path).is_file(), path
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, function)
        assert hasattr(flow, "to_deployment"), f"{item['entrypoint']} is not a flow"


def test_served_and_declared_deployments_match_in_names_flows_and_schedules() -> None:
    """prepflow serve and prefect.yaml agree on deployments, flows and cron schedules."""
    served = {d.name: d for d in deployments("*/15 * * * *", "Europe/Zurich")}  # type: ignore[attr-defined]
    declared = {item["name"]: item for item in _declared()}
    assert set(served) == set(declared)
    for name, item in declared.items():
        path, function = item["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert served[name].flow_name == getattr(module, function).name
        crons = sorted((s["cron"], s["timezone"]) for s in item.get("schedules", []))
        live = sorted((s.schedule.cron, s.schedule.timezone) for s in served[name].schedules)
        assert crons == live, name
