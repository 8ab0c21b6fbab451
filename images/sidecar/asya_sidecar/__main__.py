"""Entry point: ``python -m asya_sidecar`` / ``asya-sidecar``."""

from __future__ import annotations

import asyncio
import sys

from asya_common.logging import configure_logging
from asya_common.otel import TracingSettings
from asya_common.settings import SettingsError, load_settings
from asya_common.transport import TransportSettings
from asya_sidecar import fastjson
from asya_sidecar.app import Sidecar
from asya_sidecar.settings import RetryPolicy, SidecarSettings


def main() -> int:
    """Parses settings once and runs the sidecar until SIGTERM; exit code 2 on bad configuration."""
    try:
        settings = load_settings(SidecarSettings)
        policy = load_settings(RetryPolicy)
        transport_settings = load_settings(TransportSettings)
        tracing_settings = load_settings(TracingSettings)
    except (SettingsError, ValueError) as exc:
        print(f"asya-sidecar: invalid configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging("sidecar", settings.log_level, actor=settings.actor)
    fastjson.install()  # orjson behind strictjson (same results); docs/performance.md
    sidecar = Sidecar(settings, policy, transport_settings, tracing_settings=tracing_settings)
    try:
        import uvloop  # the libuv event loop: about a fifth less CPU per hop (docs/performance.md)
    except ImportError:
        asyncio.run(sidecar.run())
    else:
        uvloop.run(sidecar.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
