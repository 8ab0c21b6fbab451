"""Strict JSON: what the mesh accepts on the wire and emits, and nothing more.

Python's ``json`` module accepts and writes ``NaN``/``Infinity`` (not JSON), turns ``1e400`` into an
infinite float, recurses once per nesting level (``RecursionError`` on deep input instead of a parse
error) and lets a lone UTF-16 surrogate (``"\\ud800"``) through parsing, only to fail later when the
text is encoded as UTF-8. Each of those once left a message that no code path could finish. Every
body and frame is therefore parsed with :func:`loads` and checked with :func:`check`, which raise one
:class:`NotStrictJSON` naming the problem, and written with :func:`dumps`, which refuses the same.

Standard library only: the runtime imports it inside the user's image.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable

#: Deepest nesting of objects/arrays accepted anywhere in a message (the envelope itself uses 3).
MAX_DEPTH = 256

_SURROGATE = re.compile("[\ud800-\udfff]")


class NotStrictJSON(ValueError):
    """Text or a value is not strict JSON; ``reason`` names the problem in one line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _NonFinite(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonFinite(f"{name} (NaN and Infinity are not JSON)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(f"the number {text[:40]} (out of range: it would be Infinity)")
    return value


# Built once (``json.loads`` with hooks builds a decoder per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)

# A faster codec a process may install (the sidecar: orjson, see asya_sidecar.fastjson); None = stdlib only.
# It must refuse whatever it cannot represent exactly; any exception falls back to the stdlib path,
# which then decides with the exact same result and error messages.
_fast_loads: Callable[[str | bytes], Any] | None = None
_fast_dumps: Callable[[Any], bytes] | None = None


def use_codec(fast_loads: Callable[[str | bytes], Any] | None, fast_dumps: Callable[[Any], bytes] | None) -> None:
    """Installs (or, with None, removes) a faster parser/serialiser tried before the standard library."""
    global _fast_loads, _fast_dumps
    _fast_loads, _fast_dumps = fast_loads, fast_dumps


def loads(text: str | bytes, max_depth: int = MAX_DEPTH, what: str = "text") -> Any:
    """Parses strict JSON text (bytes must be UTF-8).

    Raises:
        NotStrictJSON: Not UTF-8, not JSON, NaN/Infinity, nesting deeper than :data:`MAX_DEPTH`,
            a lone surrogate, or an integer too long to convert.
    """
    if _fast_loads is not None:
        try:
            value = _fast_loads(text)
        except Exception:  # noqa: BLE001 - the stdlib path below gives the answer (or the exact error)
            pass
        else:
            if needs_check(text, max_depth):
                check(value, what, max_depth)
            return value
    scanned: str | bytes = text  # bytes are scanned as bytes: strictly decoded UTF-8 holds no lone surrogate
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotStrictJSON(f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        if text.startswith("\ufeff"):  # what json.loads says (the decoder alone would say "Expecting value")
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODER.decode(text)
    except _NonFinite as exc:
        raise NotStrictJSON(f"{what} is not strict JSON: it contains {exc}") from None
    except json.JSONDecodeError as exc:
        raise NotStrictJSON(f"{what} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise NotStrictJSON(f"{what} is nested too deeply (more than {max_depth} levels)") from None
    except ValueError as exc:  # e.g. an integer literal with more digits than Python converts
        raise NotStrictJSON(f"{what} is not valid JSON ({str(exc)[:200]})") from None
    if needs_check(scanned, max_depth):
        check(value, what, max_depth)
    return value


def needs_check(text: str | bytes, max_depth: int = MAX_DEPTH) -> bool:
    """False when scanning the text proves the parsed value passes :func:`check` (C-speed scans only).

    The parse hooks already refuse NaN, Infinity and out-of-range numbers, and UTF-8 decoding refuses
    encoded surrogates; what is left is nesting (at most one level per ``[`` or ``{`` in the text) and
    lone surrogates, which only a ``\\u`` escape can produce. Ordinary messages skip the tree walk.
    """
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{") >= max_depth or b"\\u" in text
    # a str may hold lone surrogates without any escape (argv and files decoded with surrogateescape)
    return text.count("[") + text.count("{") >= max_depth or "\\u" in text or _SURROGATE.search(text) is not None


def check(value: Any, what: str = "value", max_depth: int = MAX_DEPTH) -> None:
    """Checks a parsed or produced value without recursion: depth, surrogates, finite floats.

    Raises:
        NotStrictJSON: The first problem found, naming ``what``.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise NotStrictJSON(f"{what} contains a lone UTF-16 surrogate (text that is not valid Unicode)")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise NotStrictJSON(f"{what} contains {item!r} (NaN and Infinity are not JSON)")
        elif isinstance(item, (dict, list, tuple)):
            if depth >= max_depth:
                raise NotStrictJSON(f"{what} is nested too deeply (more than {max_depth} levels)")
            if isinstance(item, dict):
                for key, child in item.items():
                    stack.append((key, depth + 1))
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def dumps(value: Any) -> bytes:
    """Serialises ``value`` as compact strict JSON, UTF-8 encoded.

    Raises:
        NotStrictJSON: ``value`` holds NaN/Infinity, a lone surrogate or is nested too deeply.
        TypeError: ``value`` holds something JSON has no type for.
    """
    if _fast_dumps is not None:
        try:
            return _fast_dumps(value)
        except Exception:  # noqa: BLE001 - the stdlib path below gives the answer (or the exact error)
            pass
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (ValueError, RecursionError) as exc:  # found cheaply by json itself; name the problem
        check(value)
        raise NotStrictJSON(f"not JSON-serialisable ({str(exc)[:200]})") from None
