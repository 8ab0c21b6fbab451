"""Issue 10, item 8: ``asya dev`` survives its broker going away, and a second process creating its queue database.

Before the fix the state table's task died with the first broker error (the table froze for the rest of
the session), and two processes opening a fresh queue database at once (``asya send`` while ``asya dev``
was still creating it) got "database is locked" at once: SQLite returns it without waiting while the
journal mode changes or a schema read is upgraded to a write.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import textwrap
from pathlib import Path

from asya_cli.dev import DevMesh
from asya_common.transport import TransportSettings

OPENER = textwrap.dedent("""
    import asyncio, sys, time
    from pathlib import Path
    from asya_common.transport import QueueSpec, TransportSettings, create_transport
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.001)
    async def main():
        async with create_transport(TransportSettings(sqlite_path=sys.argv[1])) as transport:
            await transport.ensure_queue(QueueSpec("asya-" + sys.argv[3], "asya-" + sys.argv[3] + "-dlq"))
    asyncio.run(main())
""")


def test_processes_creating_one_queue_database_at_once_all_succeed(tmp_path):
    failures = []
    for round_ in range(6):
        db, go = tmp_path / f"q{round_}.sqlite3", tmp_path / f"go{round_}"
        procs = [subprocess.Popen([sys.executable, "-c", OPENER, str(db), str(go), f"a{i}"],
                                  stderr=subprocess.PIPE, text=True) for i in range(6)]
        go.touch()
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                failures.append(err.strip().splitlines()[-1])
    assert not failures, failures


async def test_the_dev_table_keeps_running_while_the_broker_is_away(tmp_path):
    """The queue database is unreachable (its folder is a file): each round fails, the table task lives on."""
    (tmp_path / "gone").write_text("not a folder")
    out = io.StringIO()
    settings = TransportSettings(kind="sqlite", sqlite_path=str(tmp_path / "gone" / "queues.sqlite3"))
    mesh = DevMesh([], settings, tmp_path, {}, out=out, with_crew=False)
    display = asyncio.create_task(mesh._display())
    try:
        for _ in range(200):
            if out.getvalue().count("broker unreachable") >= 2 or display.done():
                break
            await asyncio.sleep(0.1)
        assert not display.done(), f"the table task ended: {display.exception()!r}"
        assert out.getvalue().count("broker unreachable") >= 2
    finally:
        display.cancel()
