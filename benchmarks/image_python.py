"""An interpreter set up like the sidecar image, for the benchmark's ``image cN`` systems.

The development venv holds the packages of every component and of their tests (playwright brings
greenlet, which structlog imports whenever it is installed; editable installs add import finders) on
the machine's Python. The sidecar image installs only its own packages, on the Python version of its
Dockerfile. Memory and CPU of a sidecar differ between the two, so the ``image cN`` rows run our
sidecars and runtimes like the images do:

* the Python ``major.minor`` of ``images/sidecar/Dockerfile``'s ``FROM python:...``, found through
  pyenv or on PATH (the machine's own interpreter, with a notice, when there is none);
* a venv with exactly what that Dockerfile's ``pip install`` line installs, pinned by constraints.txt,
  built once per Dockerfile + constraints content and cached in ``~/.cache/asya-tools``;
* our packages from this tree re-installed into it (not editable, byte-compiled, as in the image)
  once per benchmark process, together with the runtime's (``images/runtime/Dockerfile``).
"""

from __future__ import annotations

import functools
import glob
import hashlib
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "images" / "sidecar" / "Dockerfile"
RUNTIME_DOCKERFILE = ROOT / "images" / "runtime" / "Dockerfile"
CACHE = Path.home() / ".cache" / "asya-tools"


def dockerfile_python_version(text: str) -> str:
    """The ``major.minor`` of the first ``FROM python:X.Y...`` line."""
    match = re.search(r"^FROM\s+python:(\d+\.\d+)", text, re.MULTILINE)
    if not match:
        raise ValueError("no 'FROM python:X.Y' line in the Dockerfile")
    return match[1]


def dockerfile_requirements(text: str) -> list[str]:
    """The package arguments of the Dockerfile's ``pip install`` (options and their values dropped)."""
    joined = text.replace("\\\n", " ")
    line = next((ln for ln in joined.splitlines() if re.match(r"\s*RUN\s+pip install\b", ln)), None)
    if line is None:
        raise ValueError("no 'RUN pip install' line in the Dockerfile")
    words = shlex.split(line.split("pip install", 1)[1].split("&&")[0])
    requirements, skip_next = [], False
    for word in words:
        if skip_next:
            skip_next = False
        elif word in ("-c", "--constraint", "--target", "--prefix"):
            skip_next = True
        elif not word.startswith("-"):
            requirements.append(word)
    return requirements


def _find_interpreter(version: str) -> str | None:
    candidates = sorted(glob.glob(str(Path.home() / ".pyenv" / "versions" / f"{version}.*" / "bin" / "python3")))
    if candidates:
        return candidates[-1]
    return shutil.which(f"python{version}")


@functools.cache
def image_python() -> str:
    """Path of the image-like interpreter with this tree's packages installed (built on first use).

    Returns:
        The venv's ``python``; ``sys.executable`` (with a notice) when the Dockerfile's version is missing.
    """
    text = DOCKERFILE.read_text()
    version = dockerfile_python_version(text)
    base = _find_interpreter(version)
    if base is None:
        print(f"image python: Python {version} not found (pyenv or PATH); using {sys.executable}", flush=True)
        return sys.executable
    key = hashlib.sha256(text.encode() + (ROOT / "constraints.txt").read_bytes()).hexdigest()[:12]
    venv = CACHE / f"bench-image-py{version}-{key}"
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt")]
    if not python.exists():
        print(f"image python: building {venv} (Python {version}, {DOCKERFILE.relative_to(ROOT)}'s packages)",
              flush=True)
        staging = venv.with_name(venv.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run([base, "-m", "venv", str(staging)], check=True)
        staged_pip = [str(staging / "bin" / "python"), *pip[1:]]
        subprocess.run([*staged_pip, *dockerfile_requirements(text)], check=True, cwd=ROOT)
        staging.rename(venv)  # `python -m` is all the benchmark runs, so the scripts' old paths do not matter
    ours = [*dockerfile_requirements(text), *dockerfile_requirements(RUNTIME_DOCKERFILE.read_text())]
    subprocess.run([*pip, "--no-deps", "--force-reinstall", *ours], check=True, cwd=ROOT)
    return str(python)
