"""A thin JSON client for the few Kubernetes API calls the controller makes.

kubernetes-asyncio provides authentication (kubeconfig or the in-cluster service account, with token
refresh) and the HTTP session; the controller works on plain JSON dicts so that lists, watches,
patches, Leases and Events all look the same and no model classes leak into the logic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, AsyncIterator

from kubernetes_asyncio import client, config

MERGE_PATCH = "application/merge-patch+json"


class KubeError(RuntimeError):
    """The API server answered with an error status; ``status`` is the HTTP code (410 = Gone)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"Kubernetes API error {status}: {message}")
        self.status = status


@dataclass
class KubeClient:
    """JSON requests against one API server."""

    api: client.ApiClient

    @classmethod
    async def create(cls, kubeconfig: str = "") -> "KubeClient":
        """Connects with ``kubeconfig`` when given, else as the pod's service account."""
        configuration = client.Configuration()
        if kubeconfig:
            await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
        return cls(client.ApiClient(configuration=configuration))

    async def close(self) -> None:
        """Closes the HTTP session."""
        await self.api.close()

    async def _send(self, method: str, path: str, query: dict[str, Any] | None, body: Any, content_type: str,
                    timeout: float | None):
        query_params = [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in (query or {}).items()
                        if v is not None]
        return await self.api.call_api(
            path, method, query_params=query_params,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body, auth_settings=["BearerToken"], _preload_content=False,
            _request_timeout=timeout,
        )

    async def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
                      content_type: str = "application/json", timeout: float = 30.0) -> dict[str, Any]:
        """Sends one request and returns the decoded JSON answer.

        Raises:
            KubeError: The server answered with a status of 400 or more.
        """
        resp = await self._send(method, path, query, body, content_type, timeout)
        try:
            data = await resp.read()
        finally:
            resp.release()
        decoded = json.loads(data) if data else {}
        if resp.status >= 400:
            raise KubeError(resp.status, decoded.get("message", data.decode(errors="replace")[:500])
                            if isinstance(decoded, dict) else str(decoded))
        return decoded

    async def watch(self, path: str, query: dict[str, Any], timeout: float) -> AsyncIterator[dict[str, Any]]:
        """Streams watch events (``{"type", "object"}``) until the server ends the watch.

        Raises:
            KubeError: The watch could not start, or the server sent an ERROR event (410 = Gone).
        """
        import aiohttp

        resp = await self._send("GET", path, {**query, "watch": True}, None, "application/json",
                                aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout))
        try:
            if resp.status >= 400:
                text = (await resp.read()).decode(errors="replace")
                try:
                    message = json.loads(text).get("message", text)
                except ValueError:
                    message = text
                raise KubeError(resp.status, message)
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise KubeError(int(status.get("code") or 500), status.get("message", "watch error"))
                yield event
        finally:
            resp.release()
