"""Class test handlers: one instance per process, __init__ filled from ASYA_HANDLER_ARGS."""

import os


class Model:
    instances = 0

    def __init__(self, name="default", scale=1, extra=None):
        Model.instances += 1
        self.name = name
        self.scale = scale
        self.extra = extra

    def predict(self, payload):
        return {"name": self.name, "scale": self.scale, "extra": self.extra,
                "value": payload["x"] * self.scale, "instances": Model.instances, "pid": os.getpid()}

    not_callable = 5


class NeedsPath:
    def __init__(self, path):
        self.path = path

    def run(self, payload):
        return self.path


class BrokenInit:
    def __init__(self):
        raise RuntimeError("weights file missing")

    def run(self, payload):
        return payload
