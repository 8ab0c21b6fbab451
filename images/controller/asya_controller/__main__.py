"""``python -m asya_controller`` / ``asya-controller``: parse settings once and run one replica."""

from __future__ import annotations

import asyncio
import sys

from asya_common.logging import configure_logging
from asya_common.otel import TracingSettings
from asya_common.settings import SettingsError, load_settings
from asya_common.transport import TransportSettings
from asya_controller.app import Controller
from asya_controller.settings import ControllerSettings


def main() -> None:
    """Entry point; exits 2 on bad configuration, 1 when leadership was lost, 0 on SIGTERM."""
    try:
        settings = load_settings(ControllerSettings)
        transport = load_settings(TransportSettings)
        tracing = load_settings(TracingSettings)
    except (SettingsError, ValueError) as exc:
        print(f"asya-controller: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging("controller", settings.log_level)
    sys.exit(asyncio.run(Controller(settings, transport, tracing).run()))


if __name__ == "__main__":
    main()
