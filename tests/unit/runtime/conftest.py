"""Fixtures: start real runtime subprocesses and connect real clients over their Unix socket."""

from __future__ import annotations

import pytest

from .client import RuntimeProcess, RuntimeTestClient


@pytest.fixture
async def start_runtime(tmp_path):
    """Factory: ``await start_runtime("mod.fn", ASYA_X="...")`` -> (process, connected client)."""
    started: list[tuple[RuntimeProcess, list[RuntimeTestClient]]] = []
    counter = iter(range(1000))

    async def start(handler: str, **env: str):
        folder = tmp_path / f"rt{next(counter)}"
        folder.mkdir()
        process = RuntimeProcess(folder, handler, **env)
        clients: list[RuntimeTestClient] = []
        started.append((process, clients))
        await process.wait_ready()
        client = await RuntimeTestClient.connect(process.socket_path)
        clients.append(client)
        return process, client

    yield start
    for process, clients in started:
        for client in clients:
            await client.close()
        process.stop()
