"""A handler module whose import is slow once a flag file exists: a runtime that takes seconds to restart."""

import time
from pathlib import Path

_FLAG = Path(__file__).with_name("slow-start.flag")
if _FLAG.exists():
    time.sleep(float(_FLAG.read_text()))


def echo(payload):
    return payload
