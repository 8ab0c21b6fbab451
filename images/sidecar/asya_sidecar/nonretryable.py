"""Which handler errors skip the retries: the policy's ``nonRetryableErrors`` (``ASYA_RETRY_NON_RETRYABLE_ERRORS``).

A validation error will fail the same way on every attempt, so retrying it only delays the error-end
record. The runtime reports the exception's type and the names of all its base classes (``mro``), so an
entry matches the raised class or any class it derives from: ``ValueError`` also stops the retries of a
user's ``class BadInput(ValueError)``. An entry without a dot matches a class by its name in any module
(``BadInput``); a dotted entry matches the full ``module.Class`` name the runtime reports
(``mypkg.errors.BadInput``), or its last two parts (``errors.BadInput``) for short.
"""

from __future__ import annotations

from typing import Any, Iterable

ALWAYS_PERMANENT = ("MessageTooLarge",)  # retrying cannot shrink an output


def error_classes(error: dict[str, Any]) -> list[str]:
    """The class names an error frame says the exception is an instance of (its type first)."""
    names = [str(error.get("type") or "")]
    mro = error.get("mro")
    if isinstance(mro, list):
        names += [str(n) for n in mro if isinstance(n, str)]
    return [n for n in names if n]


def _matches(entry: str, name: str) -> bool:
    if entry == name:
        return True
    if "." not in entry:
        return name.rsplit(".", 1)[-1] == entry
    return name.endswith("." + entry)


def is_non_retryable(error: dict[str, Any], entries: Iterable[str]) -> bool:
    """True when ``error`` must go to error-end at once instead of being retried.

    Args:
        error: The runtime's error frame body (``type``, ``mro``...).
        entries: The policy's ``nonRetryableErrors``.
    """
    classes = error_classes(error)
    if any(name in ALWAYS_PERMANENT for name in classes):
        return True
    return any(_matches(entry.strip(), name) for entry in entries if entry.strip() for name in classes)
