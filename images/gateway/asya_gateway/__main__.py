"""``asya-gateway`` / ``python -m asya_gateway``: serve the gateway under uvicorn.

Binds the socket itself (so ``ASYA_GATEWAY_PORT=0`` works and the real URL can be written to
``ASYA_GATEWAY_URL_FILE`` for ``asya dev``), and refuses any non-loopback address when no API keys
are configured. Exit 2 on a configuration error, with one line naming it.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from asya_common.logging import configure_logging, get_logger
from asya_common.settings import SettingsError, env_field, load_settings
from asya_common.transport import TransportSettings

from asya_gateway.app import create_app
from asya_gateway.auth import ApiKeys, ApiKeysError
from asya_gateway.settings import GatewaySettings
from asya_gateway.tools import ToolsError


@dataclass(frozen=True)
class RunSettings:
    """Process-level options (not needed by the app itself)."""

    url_file: str = env_field("ASYA_GATEWAY_URL_FILE", default="", help="write the bound URL here (asya dev)")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when ``host`` contains ':')."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main() -> int:
    """Runs the gateway until SIGTERM/SIGINT; returns the exit code."""
    try:
        settings = load_settings(GatewaySettings)
        transport_settings = load_settings(TransportSettings)
        run = load_settings(RunSettings)
        configure_logging("gateway", settings.log_level)
        if not settings.loopback and ApiKeys.load(settings.api_keys_file).disabled:
            raise SettingsError(
                f"ASYA_GATEWAY_HOST={settings.host} needs API keys (ASYA_GATEWAY_API_KEYS): without keys every caller "
                "is an admin, so the gateway only binds to loopback")
        app = create_app(settings, transport_settings)
    except (SettingsError, ValueError, ToolsError, ApiKeysError) as exc:
        print(f"asya-gateway: {exc}", file=sys.stderr)
        return 2
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=5,
                            proxy_headers=False, lifespan="on")
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            get_logger(component="gateway").info("gateway listening", url=url)
            if run.url_file:
                tmp = Path(run.url_file + ".tmp")
                tmp.write_text(url)
                tmp.replace(run.url_file)
        try:
            await task
        finally:  # a stopped gateway leaves no URL behind for `asya send --stream` to try
            if run.url_file and Path(run.url_file).exists() and Path(run.url_file).read_text() == url:
                Path(run.url_file).unlink()

    run_loop(serve())
    return 0 if server.started else 1


def run_loop(coro) -> None:
    """Runs the server on uvloop when installed (fewer CPU cycles per SSE write), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    uvloop.run(coro)


if __name__ == "__main__":
    sys.exit(main())
