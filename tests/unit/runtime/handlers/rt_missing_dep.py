"""A handler module that imports a library missing from the image."""

import rt_definitely_not_installed_dep  # noqa: F401


def run(payload):
    return payload
