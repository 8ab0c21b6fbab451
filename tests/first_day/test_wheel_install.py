"""A pip-installed `asya` (from a wheel, not the editable checkout) validates values against the chart schema.

The wheel is built from a copy of the package folder next to a copy of the chart (so the package's
symlinks into ``charts/asya-actor`` resolve as in the repository), installed into a fresh venv, and
driven as a user would: `asya dev` on a values file with a typo must fail naming the key, and the
schema and defaults it used are the files inside the installed package.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIRS = [REPO / "python" / "asya_common", REPO / "images" / "runtime", REPO / "images" / "sidecar",
               REPO / "images" / "crew"]


def _run(*argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, **kw)


def test_installed_wheel_finds_chart_schema_and_defaults(tmp_path):
    tree = tmp_path / "src"
    shutil.copytree(REPO / "python" / "asya_cli", tree / "python" / "asya_cli", symlinks=True,
                    ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    (tree / "charts" / "asya-actor").mkdir(parents=True)
    for name in ("values.yaml", "values.schema.json"):
        shutil.copy(REPO / "charts" / "asya-actor" / name, tree / "charts" / "asya-actor" / name)
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                 tmp_path / "dist", tree / "python" / "asya_cli")
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("asya_cli-*.whl"))

    venv = tmp_path / "venv"
    assert _run(sys.executable, "-m", "venv", "--without-pip", venv).returncode == 0
    python = venv / "bin" / "python"
    installed = _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    assert installed.returncode == 0, installed.stderr
    # third-party libraries from the project venv (plain paths: its editable asya_* finders stay out)
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(purelib, "project-libs.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "PYTHONPATH": ":".join(map(str, SOURCE_DIRS)),
           "HOME": str(tmp_path)}

    where = _run(python, "-c", "import asya_cli.values as v; print(v.__file__); print(v.CHART_DIR)", env=env)
    assert where.returncode == 0, where.stderr
    module_file, chart_dir = where.stdout.split()
    assert module_file.startswith(str(venv)) and Path(chart_dir, "values.schema.json").is_file()
    assert not Path(chart_dir, "values.schema.json").is_symlink()  # real files in the wheel

    actors = tmp_path / "actors"
    actors.mkdir()
    (actors / "judge.yaml").write_text("name: judge\nhandler: judge.run\nresilience:\n  actorTimeout: 30s\n")
    typo = _run(venv / "bin" / "asya", "dev", "--state-dir", tmp_path / "state", actors / "judge.yaml", env=env)
    assert typo.returncode == 2, typo.stdout + typo.stderr
    assert "resilience" in typo.stderr and "not allowed" in typo.stderr, typo.stderr
