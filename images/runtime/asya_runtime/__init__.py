"""Asya runtime: loads the user's handler and serves it to the sidecar over a Unix socket.

Standard library only (plus ``asya_common``'s stdlib core: envelope, protocol, settings), because it
runs inside the user's image next to the user's own pinned libraries. Start it with
``python -m asya_runtime`` or the ``asya-runtime`` console script.
"""

__version__ = "0.1.0"
