"""The runtime's answer frames, encoded once, with the strict-JSON check done on the encoded text.

A result or FLY value must be strict JSON: no NaN/Infinity, no lone surrogate, at most
``strictjson.MAX_DEPTH`` levels. Walking the whole value in Python to prove it (``strictjson.check``)
cost as much as encoding it. The encoder finds most problems itself: ``allow_nan=False`` refuses NaN
and Infinity, encoding the text to UTF-8 refuses lone surrogates, and each nesting level writes a ``[``
or ``{``, so a text with fewer of those than the depth limit cannot be too deep. Only when one of
those trips (or could) does the tree walk run, and it names the problem with the same message as before.
"""

from __future__ import annotations

import json
from typing import Any

from asya_common import protocol, strictjson

from asya_runtime.invoke import ResultError

_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
RESULT_DEPTH = strictjson.MAX_DEPTH + 1  # outputs -> envelope -> payload: one level more than a payload
FLY_DEPTH = strictjson.MAX_DEPTH


def check_strict(value: Any, what: str, max_depth: int) -> None:
    """Raises ResultError when ``value`` is not strict JSON (NaN, Infinity, a lone surrogate, too deep)."""
    try:
        strictjson.check(value, what, max_depth)
    except strictjson.NotStrictJSON as exc:
        raise ResultError(f"{exc.reason}; the result must be strict JSON") from None


def strict_frame(message: dict[str, Any], value: Any, what: str, max_depth: int) -> bytes:
    """Encodes ``message`` (which carries ``value``) as a frame, refusing a ``value`` that is not strict JSON.

    Raises:
        ResultError: ``value`` is not strict JSON (``"<problem>; the result must be strict JSON"``) or
            not JSON-serialisable (``"handler result is not JSON-serialisable: <why>"``).
    """
    try:
        data = _encode(message).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        check_strict(value, what, max_depth)  # the exact strict-JSON message when that is the problem
        raise ResultError(f"handler result is not JSON-serialisable: {exc}") from None
    if data.count(b"[") + data.count(b"{") > max_depth:  # could be too deep: decide exactly
        check_strict(value, what, max_depth)
    if len(data) > protocol.MAX_FRAME_BYTES:
        raise ResultError(f"handler result is not JSON-serialisable: frame of {len(data)} bytes exceeds "
                          f"the {protocol.MAX_FRAME_BYTES}-byte limit")
    return protocol.HEADER.pack(len(data)) + data


def result_frame(request_id: Any, outputs: list[dict[str, Any]]) -> bytes:
    """The ``result`` frame of a call (see :func:`strict_frame`)."""
    return strict_frame({"id": request_id, "type": "result", "outputs": outputs}, outputs, "handler result",
                        RESULT_DEPTH)


def fly_frame(request_id: Any, data: Any) -> bytes:
    """One ``fly`` frame of a call (see :func:`strict_frame`)."""
    return strict_frame({"id": request_id, "type": "fly", "data": data}, data, "FLY data", FLY_DEPTH)


def frame(message: dict[str, Any]) -> bytes:
    """Any other frame (``pong``, ``error``, ``shutdown``, ``stopping``): the protocol's own encoder."""
    return protocol.encode_frame(message)
