"""The gateway of ``asya dev``: one ``asya-gateway`` process on loopback over the dev mesh's store and queues.

It is supervised like the sidecars (restarted when it crashes) and writes its URL to
``<state dir>/gateway.url`` once it listens; ``asya dev`` prints it and ``asya send --stream`` reads it.
Tools come from ``ASYA_GATEWAY_TOOLS`` when set; the port from ``ASYA_GATEWAY_PORT`` (default: a free one).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, TextIO

URL_FILE = "gateway.url"


def gateway_env(state_dir: Path, base_env: dict[str, str], transport_env: dict[str, str], status_db: str
                ) -> dict[str, str]:
    """Environment of the dev gateway: loopback only, the mesh's transport and status store."""
    return {**base_env, **transport_env, "PYTHONUNBUFFERED": "1", "ASYA_STATUS_DB": status_db,
            "ASYA_GATEWAY_HOST": "127.0.0.1", "ASYA_GATEWAY_PORT": base_env.get("ASYA_GATEWAY_PORT", "0"),
            "ASYA_GATEWAY_URL_FILE": str(state_dir / URL_FILE)}


def gateway_argv() -> list[str]:
    return [sys.executable, "-m", "asya_gateway"]


def read_url(state_dir: Path) -> str | None:
    """The URL the dev mesh's gateway listens on, or None when it is not up."""
    path = Path(state_dir) / URL_FILE
    return path.read_text().strip() if path.exists() else None


async def announce(state_dir: Path, out: TextIO, log_path: Path) -> None:
    """Prints the gateway URL once it is listening (and again after a restart on a new port)."""
    path = Path(state_dir) / URL_FILE
    path.unlink(missing_ok=True)
    shown: Any = None
    while True:
        url = read_url(state_dir)
        if url and url != shown:
            print(f"gateway: {url}  (REST/SSE: {url}/envelopes, trace: {url}/ui/envelopes/<id>; log {log_path})",
                  file=out, flush=True)
            shown = url
        await asyncio.sleep(0.2)
