"""Root test configuration: makes ``tests.support`` importable for every suite."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Broker fixtures (rabbitmq_settings, sqs_settings, pubsub_settings) for every suite that needs them.
pytest_plugins = ["tests.support.brokers", "tests.support.postgres"]
