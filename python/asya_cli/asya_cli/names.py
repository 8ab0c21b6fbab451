"""Actor names as users type them: what is allowed, and the fix for a name that is not.

An actor name becomes a queue name, a Kubernetes label and part of a Deployment name, so it is
lowercase letters, digits and ``-`` (starting and ending with a letter or digit, at most 40 characters),
the same pattern as the chart's ``values.schema.json``. ``clean_text`` is a natural Python-ish name that
is refused; the message says what is allowed and suggests ``clean-text``.
"""

from __future__ import annotations

import re

PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_LENGTH = 40
ALLOWED = "lowercase letters, digits and '-' (starting and ending with a letter or digit, at most 40 characters)"


def suggest(name: str) -> str:
    """The closest allowed name: lowercased, other characters replaced by '-', trimmed."""
    fixed = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return fixed[:MAX_LENGTH].rstrip("-")


def problem(name: object) -> str | None:
    """Why ``name`` is not a valid actor name, with a suggestion; None when it is valid."""
    if not isinstance(name, str) or not name:
        return f"an actor name is required: {ALLOWED}"
    if PATTERN.match(name) and len(name) <= MAX_LENGTH:
        return None
    hint = suggest(name)
    return f"actor names use {ALLOWED}; got {name!r}" + (f" — try {hint!r}" if hint and hint != name else "")
