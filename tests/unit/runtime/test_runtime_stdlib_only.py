"""The runtime imports only the standard library and asya_common's core (envelope, protocol, settings)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from .client import RUNTIME_SRC, RuntimeProcess, RuntimeTestClient, envelope

ALLOWED_COMMON = {"asya_common", "asya_common.envelope", "asya_common.protocol", "asya_common.settings",
                  "asya_common.strictjson"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
            names.add(node.module)
            if node.module == "asya_common":  # from asya_common import protocol
                names.update(f"asya_common.{alias.name}" for alias in node.names)
    return names


def test_source_imports_only_stdlib_and_asya_common_core():
    sources = sorted((RUNTIME_SRC / "asya_runtime").glob("*.py"))
    assert len(sources) >= 5
    for source in sources:
        for name in _imports(source):
            top = name.split(".")[0]
            allowed = top in sys.stdlib_module_names or top == "asya_runtime" or name in ALLOWED_COMMON
            assert allowed, f"{source.name} imports {name!r}, which is neither stdlib nor asya_common core"


async def test_runtime_serves_with_no_site_packages_at_all(tmp_path):
    # -S: no site-packages (nothing pip-installed is importable); PYTHONPATH holds only the handler
    # folder and the two source folders.
    process = RuntimeProcess(tmp_path, "rt_introspect.modules", python_args=("-S", "-s"))
    try:
        await process.wait_ready()
        client = await RuntimeTestClient.connect(process.socket_path)
        try:
            _, frame = await client.call(envelope({}))
        finally:
            await client.close()
    finally:
        process.stop()
    assert frame["type"] == "result", frame
    report = frame["outputs"][0]["payload"]
    assert report["no_site"] == 1
    assert not any("site-packages" in entry for entry in report["path"])
    foreign = set(report["foreign"]) - {"rt_introspect"}
    non_runtime = {name for name in foreign if not name.startswith("asya_runtime")}
    assert non_runtime <= ALLOWED_COMMON, sorted(non_runtime)
