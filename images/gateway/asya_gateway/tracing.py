"""W3C trace context from an HTTP request into the envelope it submits.

A client that sends ``traceparent`` (and ``tracestate``) HTTP headers with ``POST /envelopes`` gets
its trace continued by the first actor's hop span, exactly like ``asya send --header traceparent=...``:
the values are copied into the envelope ``headers`` unless the body already sets them. The sidecars
validate them (a malformed one starts a new trace and is logged) and export the spans.
"""

from __future__ import annotations

from typing import Any, Mapping

TRACE_HEADERS = ("traceparent", "tracestate")


def trace_headers(http_headers: Mapping[str, str], body_headers: Any) -> Any:
    """``body_headers`` plus the request's W3C trace headers (body values win); other input unchanged."""
    found = {name: http_headers[name] for name in TRACE_HEADERS if http_headers.get(name)}
    if not found or not (body_headers is None or isinstance(body_headers, dict)):
        return body_headers
    return {**found, **(body_headers or {})}
