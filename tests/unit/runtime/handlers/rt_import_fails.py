"""A handler module whose import raises (user code broken at import time)."""

raise ImportError("cannot load native library libfoo.so")


def run(payload):
    return payload
