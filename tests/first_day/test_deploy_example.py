"""examples/sentiment-image: the Dockerfile template of docs/deploy.md, checked by reading and by running it.

Docker cannot run here. The test reads the Dockerfile (pinned base, numeric non-root USER matching the
chart, libraries from a pinned requirements file, no Asya inside), replays its build steps into a folder
that stands for the image's filesystem (WORKDIR, COPY, and every RUN that is not `pip install`, as
processes), renders the chart with the example's values, and starts the runtime the way the pod does:
the rendered command and env (paths mapped into the folder), an interpreter without site-packages, and
the runtime copied in as the init container does. A call over the runtime socket must then score text,
and nothing may be written outside HOME (the pod's root filesystem is read-only).
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from asya_common import envelope as env
from tests.charts.helpers import CHARTS, VALUES, container, one, render, tool
from tests.support.require import require, wait_for
from tests.unit.runtime.client import RuntimeTestClient

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sentiment-image"
REPO = Path(__file__).resolve().parents[2]
PINNED_BASE = re.compile(r"^python:\d+\.\d+\.\d+-[a-z0-9-]+$")


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (EXAMPLE / "Dockerfile").read_text())
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, args = line.partition(" ")
            steps.append((word.upper(), args.strip()))
    return steps


def test_dockerfile_follows_the_template_rules():
    steps = instructions()
    bases = [args for word, args in steps if word == "FROM"]
    assert len(bases) == 1 and PINNED_BASE.match(bases[0]), bases
    user = [args for word, args in steps if word == "USER"][-1]
    uid, _, gid = user.partition(":")
    assert uid == gid == "10001"  # the chart's securityContext.runAsUser/runAsGroup
    assert [args for word, args in steps if word == "WORKDIR"] == ["/app"]
    pip = [args for word, args in steps if word == "RUN" and "pip install" in args]
    assert pip and all("--no-cache-dir" in a and "-r requirements.txt" in a for a in pip)
    requirements = (EXAMPLE / "requirements.txt").read_text().splitlines()
    assert all(line.startswith("#") or "==" in line for line in requirements if line.strip())  # pinned
    installed = " ".join(args for _, args in steps) + " ".join(r for r in requirements if not r.startswith("#"))
    assert "asya" not in installed.lower()  # nothing from Asya in the image: the chart brings the runtime


def _build(root: Path, bin_dir: Path) -> Path:
    """Replays WORKDIR / COPY / RUN into ``root``; returns the working directory."""
    workdir = root
    for word, args in instructions():
        if word == "WORKDIR":
            workdir = root / args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif word == "COPY":
            source, dest = shlex.split(args)
            target = (root / dest.lstrip("/")) if dest.startswith("/") else workdir / dest
            if (EXAMPLE / source).is_dir():
                shutil.copytree(EXAMPLE / source, target, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.mkdir(parents=True, exist_ok=True) if dest.endswith("/") else None
                shutil.copy(EXAMPLE / source, target if not dest.endswith("/") else target / Path(source).name)
        elif word == "RUN" and "pip install" not in args:
            command = re.sub(r"(?<![\w.])/app\b", str(root / "app"), args)
            done = subprocess.run(["sh", "-c", command], cwd=workdir, capture_output=True, text=True,
                                  env={"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
            assert done.returncode == 0, f"RUN {args}: {done.stderr}"
    return workdir


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_the_image_runs_the_handler_as_the_chart_starts_it(tmp_path):
    require(tool("HELM", "helm") is not None, "helm not installed (make tools-helm)")
    root, tmpfs, sockets, lib = (tmp_path / d for d in ("image", "tmp", "sockets", "runtime-lib"))
    for folder in (root, tmpfs, sockets):
        folder.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "python3").symlink_to(sys.executable)
    workdir = _build(root, bin_dir)
    assert (root / "app" / "models" / "lexicon.json").is_file()  # the build step baked the model

    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")  # what the init container copies in
    shutil.copytree(REPO / "images/runtime/asya_runtime", lib / "asya_runtime", ignore=ignore)
    shutil.copytree(REPO / "python/asya_common/asya_common", lib / "asya_common", ignore=ignore)

    deployment = one(render(CHARTS / "asya-actor", [VALUES / "platform" / "rabbitmq.yaml", EXAMPLE / "values.yaml"]),
                     "Deployment")
    spec = container(deployment, "asya-runtime")
    assert spec["image"] == "registry.example.com/nlp/sentiment:1.0.0"
    mounts = {"/opt/asya-runtime": str(lib), "/var/run/asya": str(sockets), "/tmp": str(tmpfs),
              "/app": str(root / "app")}

    pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, mounts)) + r")(?=/|:|$)")

    def mapped(value: str) -> str:  # one pass: a mapped path is never mapped again
        return pattern.sub(lambda m: mounts[m.group(1)], value)

    runtime_env = {e["name"]: mapped(e["value"]) for e in spec["env"] if "value" in e}
    assert runtime_env["PYTHONPATH"] == f"{lib}:{root / 'app' / 'src'}"  # one entry: runtime + the user's
    command = [sys.executable if spec["command"][0] == "python3" else spec["command"][0], "-S", *spec["command"][1:]]
    before = _files(root)
    process = subprocess.Popen(command, cwd=workdir, env={"PATH": "/usr/bin:/bin", **runtime_env},
                               stderr=open(tmp_path / "runtime.log", "w"))
    try:
        wait_for(lambda: Path(runtime_env["ASYA_SOCKET_PATH"]).exists() or process.poll() is not None,
                 timeout=60, what="the runtime socket")
        assert process.poll() is None, (tmp_path / "runtime.log").read_text()

        async def call():
            client = await RuntimeTestClient.connect(runtime_env["ASYA_SOCKET_PATH"])
            try:
                return await client.call(env.make_envelope(["sentiment"], {"text": "What a GREAT good day"}))
            finally:
                await client.close()

        _, frame = asyncio.run(call())
    finally:
        process.terminate()
        process.wait(30)
    assert frame["type"] == "result", frame
    assert frame["outputs"][0]["payload"] == {"text": "What a GREAT good day", "sentiment": "positive", "score": 1.6}
    assert _files(root) == before, "the handler wrote into the image's (read-only) filesystem"
    assert (tmpfs / ".cache" / "sentiment" / "last-score.txt").is_file()  # caches go to HOME=/tmp
    assert process.returncode == 0
