"""The HTTP side of the MCP face: the SDK's Streamable HTTP session manager, host checks and bearer auth.

Kept apart from :mod:`asya_gateway.mcp_face` (what a tool call does) so each stays small. The session
manager serves both protocol eras of the ``mcp`` SDK: 2026-07-28 requests are stateless single
exchanges; 2025-era clients get a session (``Mcp-Session-Id``) unless ``ASYA_GATEWAY_MCP_STATELESS``.
Bearer API keys are checked by the SDK's ``BearerAuthBackend`` + ``RequireAuthMiddleware`` with
:class:`ApiKeyVerifier` (the SDK's ``TokenVerifier`` protocol over the gateway's keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.middleware.authentication import AuthenticationMiddleware

from asya_common.settings import env_field
from asya_gateway import auth


@dataclass(frozen=True)
class McpSettings:
    """Options of the MCP endpoint: host checks (the SDK's DNS-rebinding protection) and session mode."""

    allowed_hosts: tuple = env_field(
        "ASYA_GATEWAY_ALLOWED_HOSTS", default=(),
        help="Host headers /mcp accepts, e.g. 'asya-gateway:*,asya-gateway.asya.svc:*' (empty: loopback names "
             "when bound to loopback, any host otherwise - the bearer key is then the protection)")
    allowed_origins: tuple = env_field(
        "ASYA_GATEWAY_ALLOWED_ORIGINS", default=(), help="Origin headers /mcp accepts from browsers")
    stateless: bool = env_field(
        "ASYA_GATEWAY_MCP_STATELESS", default=False,
        help="serve 2025-era MCP clients without sessions, so any replica answers any request (they then get "
             "'paused' results instead of elicitation); 2026-07-28 clients are stateless either way")


def transport_security(settings: McpSettings, loopback: bool) -> TransportSecuritySettings:
    """The SDK's host/origin checks: configured names, loopback names on loopback, else off."""
    if settings.allowed_hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                         allowed_hosts=list(settings.allowed_hosts),
                                         allowed_origins=list(settings.allowed_origins))
    if loopback:
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*",
                             *settings.allowed_origins])
    return TransportSecuritySettings(enable_dns_rebinding_protection=False)


class ApiKeyVerifier:
    """The SDK's ``TokenVerifier`` over the gateway's API keys: a bearer token is a key, its scopes the key's."""

    def __init__(self, keys: auth.ApiKeys):
        self.keys = keys

    async def verify_token(self, token: str) -> AccessToken | None:
        """An ``AccessToken`` naming the key id and scopes, or None for an unknown key."""
        principal = self.keys.authenticate(token)
        if principal is None:
            return None
        return AccessToken(token="sha256:" + auth.hash_token(token), client_id=principal.key_id,
                           scopes=sorted(principal.scopes))



def endpoint(server: Any, keys: auth.ApiKeys, *, loopback: bool, settings: McpSettings | None = None
             ) -> tuple[Any, StreamableHTTPSessionManager]:
    """The ``/mcp`` ASGI endpoint of a low-level ``Server`` and its session manager (run it in the lifespan)."""
    settings = settings or McpSettings()
    manager = StreamableHTTPSessionManager(app=server, stateless=settings.stateless,
                                           security_settings=transport_security(settings, loopback))
    asgi: Any = StreamableHTTPASGIApp(manager)
    if not keys.disabled:
        asgi = AuthenticationMiddleware(AuthContextMiddleware(RequireAuthMiddleware(asgi, [])),
                                        backend=BearerAuthBackend(ApiKeyVerifier(keys)))
    return asgi, manager
