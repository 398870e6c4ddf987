"""The storefronts' HTTP clients of the http part (``bench.http``).

A storefront's HTTP client is the storefront's cost, not cartkeeper's: the shoppers use
aiohttp (its parser in C, as a PHP storefront's curl), and the shopper alone measures the
same updates through httpx too (``alone_httpx`` in the details), so what httpx itself
adds on this machine is on record beside the figure the target is judged on.

Both answer ``(status, JSON body or None)``: one shape for ``bench.http``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol

import aiohttp
import httpx


class StorefrontHttp(Protocol):
    """What a shopper needs of an HTTP client (keep-alive, the API key preset)."""

    #: ``aiohttp`` or ``httpx``
    name: str

    async def put_json(
        self, path: str, body: Any, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any]: ...

    async def get(self, path: str) -> tuple[int, Any]: ...


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


class AiohttpStorefront:
    name = "aiohttp"

    def __init__(self, base_url: str, headers: Mapping[str, str], connections: int) -> None:
        self._base = base_url
        self._headers = dict(headers)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AiohttpStorefront:
        self._session = aiohttp.ClientSession(
            base_url=self._base,
            headers=self._headers,
            connector=aiohttp.TCPConnector(limit=self._connections),
            timeout=aiohttp.ClientTimeout(total=30.0),
        )
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use it in `async with`"
        return self._session

    async def put_json(
        self, path: str, body: Any, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        async with self.session.put(path, json=body, headers=headers) as response:
            return response.status, _json_or_none(await response.text())

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(path) as response:
            return response.status, _json_or_none(await response.text())


class HttpxStorefront:
    name = "httpx"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def put_json(
        self, path: str, body: Any, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        response = await self.client.put(path, json=body, headers=headers)
        return response.status_code, _json_or_none(response.text)

    async def get(self, path: str) -> tuple[int, Any]:
        response = await self.client.get(path)
        return response.status_code, _json_or_none(response.text)
