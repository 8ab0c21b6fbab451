"""Every values combination the chart tests render, and what each one is meant to prove.

A scenario is a chart plus ``-f`` layers in Helm's merge order (and optional ``--set``). They come from
the charts' own ``ci/*-values.yaml`` files (also used by ``ct lint``), from each team values file layered
over the platform file named in its ``# layers:`` header, and from the example actors of ``asya dev``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.charts.helpers import CHARTS, REPO, VALUES

LAYERS_HEADER = re.compile(r"^# layers: (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Scenario:
    """One ``helm template`` invocation."""

    id: str
    chart: str
    values: tuple[Path, ...] = ()
    sets: tuple[str, ...] = field(default=())
    release: str = "test"


def layers_of(team_file: Path) -> list[Path]:
    """The platform layers a team file declares in its ``# layers:`` header (helm -f order)."""
    found = LAYERS_HEADER.findall(team_file.read_text())
    if not found:
        raise ValueError(f"{team_file} has no '# layers: values/platform/<transport>.yaml' header")
    return [REPO / item for item in found]


def ci_scenarios() -> list[Scenario]:
    """The charts' own ci/*-values.yaml files."""
    return [
        Scenario(f"{chart.name}/ci/{path.name}", chart.name, (path,), release=chart.name.replace("asya-", ""))
        for chart in sorted(CHARTS.iterdir())
        for path in sorted((chart / "ci").glob("*-values.yaml"))
    ]


def team_scenarios() -> list[Scenario]:
    """Each team actor file over its platform layer."""
    return [
        Scenario(f"teams/{path.parent.name}/{path.name}", "asya-actor", (*layers_of(path), path),
                 release=path.stem)
        for path in sorted((VALUES / "teams").glob("*/*.yaml"))
    ]


def example_scenarios() -> list[Scenario]:
    """The `asya dev` example actors, deployed unchanged over the RabbitMQ platform layer."""
    return [
        Scenario(f"examples/{path.name}", "asya-actor", (VALUES / "platform" / "rabbitmq.yaml", path),
                 sets=("image.repository=registry.example.com/digits", "image.tag=1.0.0"), release=path.stem)
        for path in sorted((REPO / "examples" / "digits" / "actors").glob("*.yaml"))
    ]


def all_scenarios() -> list[Scenario]:
    """Every scenario the render tests run."""
    return ci_scenarios() + team_scenarios() + example_scenarios()
