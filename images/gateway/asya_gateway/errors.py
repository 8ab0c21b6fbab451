"""Errors of the gateway service; every protocol face (REST, MCP, A2A) maps them the same way.

Each carries an HTTP status, a short machine-readable ``code`` and a message that names the problem.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Base of every error the service raises to a client."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None,
                 detail: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
        self.detail = detail or {}

    def to_json(self) -> dict[str, Any]:
        """The JSON error body: ``{"error": {"code", "message", ...detail}}``."""
        return {"error": {"code": self.code, "message": self.message, **self.detail}}


class BadRequest(GatewayError):
    """The request is malformed (invalid JSON, wrong shape)."""


class Unauthorized(GatewayError):
    """No API key, or an unknown one."""

    status_code, code = 401, "unauthorized"


class Forbidden(GatewayError):
    """The key lacks the scope the operation needs."""

    status_code, code = 403, "forbidden"


class NotFound(GatewayError):
    """No such envelope, or it belongs to another key (never revealed)."""

    status_code, code = 404, "not_found"


class UnknownTool(GatewayError):
    """The named tool is not configured."""

    status_code, code = 404, "unknown_tool"


class InvalidArguments(GatewayError):
    """Arguments break the tool's JSON Schema; nothing was recorded or published."""

    status_code, code = 422, "invalid_arguments"

    def __init__(self, message: str, path: str = "$"):
        super().__init__(message, detail={"path": path})
        self.path = path


class PayloadTooLarge(GatewayError):
    """The request body exceeds ``ASYA_GATEWAY_MAX_BODY_BYTES``."""

    status_code, code = 413, "payload_too_large"


class PublishError(GatewayError):
    """The first envelope could not be published; its record is marked failed."""

    status_code, code = 503, "publish_failed"


class Conflict(GatewayError):
    """The envelope is not in a state that allows the operation (second resume, cancel of a final one)."""

    status_code, code = 409, "conflict"


class PauseNotFound(NotFound):
    """The envelope is not paused (never was, or already resumed)."""

    code = "pause_not_found"


class PauseConflict(Conflict):
    """Another resume claimed this pause first."""

    code = "already_resumed"


class PauseInputInvalid(GatewayError):
    """Resume input breaks the pause's JSON Schema; the envelope stays paused."""

    status_code, code = 422, "invalid_input"

    def __init__(self, message: str, path: str = "$"):
        super().__init__(message, detail={"path": path})
        self.path = path
