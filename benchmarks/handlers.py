"""The no-op handler the pipeline benchmark runs in every actor."""


def noop(payload):
    return payload
