"""Invariants of the runtime, sidecar and crew Dockerfiles (no Docker engine here, so they are read, not built).

Each must build from the repository root with pinned bases, install the repository's own packages under
constraints.txt, run as a numeric non-root user, and agree with the chart (runtime folder, metrics port).
"""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from tests.charts.helpers import CHARTS, REPO

IMAGES = ["runtime", "sidecar", "crew", "gateway"]
PINNED_BASE = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+-[\w.-]+(@sha256:[0-9a-f]{64})?$")


def instructions(image: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    text = (REPO / "images" / image / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


@pytest.mark.parametrize("image", IMAGES)
def test_every_base_image_is_pinned_to_a_full_version(image):
    bases = [args.split()[0] for word, args in instructions(image) if word == "FROM"]
    assert bases, f"{image}: no FROM"
    for base in bases:
        assert PINNED_BASE.match(base), f"{image}: base {base!r} is not pinned to X.Y.Z-variant"


@pytest.mark.parametrize("image", IMAGES)
def test_final_stage_runs_as_numeric_non_root_user(image):
    steps = instructions(image)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    users = [args for word, args in steps[last_from:] if word == "USER"]
    assert users, f"{image}: the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, f"{image}: USER {users[-1]!r} is not a numeric non-root uid"
    assert not gid or (gid.isdigit() and int(gid) > 0)


@pytest.mark.parametrize("image", IMAGES)
def test_pip_installs_the_repository_packages_under_the_constraints(image):
    installs = [args for word, args in instructions(image) if word == "RUN" and "pip install" in args]
    assert installs, f"{image}: no pip install"
    for command in installs:
        words = shlex.split(command)
        assert "--no-cache-dir" in words
        assert words[words.index("-c") + 1] == "constraints.txt", f"{image}: pip install without -c constraints.txt"
        targets = [w.split("[")[0] for w in words if w.startswith("./")]
        assert "./python/asya_common" in targets and f"./images/{image}" in targets, targets


@pytest.mark.parametrize("image", IMAGES)
def test_copy_sources_exist_in_the_repository(image):
    for word, args in instructions(image):
        if word in {"COPY", "ADD"} and not args.startswith("--from"):
            *sources, _dest = shlex.split(args)
            for source in sources:
                assert (REPO / source).exists(), f"{image}: COPY source {source} does not exist (build context = repo root)"


def test_runtime_image_holds_the_folder_the_chart_copies():
    lib = yaml.safe_load((CHARTS / "asya-actor" / "values.yaml").read_text())["runtime"]["libPath"]
    steps = instructions("runtime")
    assert any(word == "RUN" and f"--target {lib}" in args for word, args in steps)
    assert any(word == "COPY" and args.split()[-1] == lib for word, args in steps)


def test_sidecar_exposes_the_chart_metrics_port():
    port = yaml.safe_load((CHARTS / "asya-actor" / "values.yaml").read_text())["sidecar"]["metricsPort"]
    assert ("EXPOSE", str(port)) in instructions("sidecar")


def test_uid_matches_the_chart_security_context():
    uid = yaml.safe_load((CHARTS / "asya-actor" / "values.yaml").read_text())["securityContext"]["runAsUser"]
    for image in IMAGES:
        users = [args for word, args in instructions(image) if word == "USER"]
        assert users[-1].split(":")[0] == str(uid), image
