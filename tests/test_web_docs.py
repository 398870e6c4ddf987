"""``/docs`` (``starter.web.docs``): Swagger UI from the app's own files, never a CDN;
``/openapi.json`` beside it; and, in Chromium, the page renders the API's operations
without a single request leaving the app."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from activities.settings import Settings
from starter.web.app import create_app
from tests.browser import chromium, served

ASSET_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
}


def web_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        secret_key=SecretStr("d" * 40),
    )


def make_app(tmp_path: Path, session_factory: Any) -> FastAPI:
    async def no_temporal() -> Any:
        raise ConnectionRefusedError("the docs need no Temporal")

    return create_app(
        web_settings(tmp_path),
        temporal_client_factory=no_temporal,
        session_factory=session_factory,
    )


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        yield client


def referenced(html: str) -> list[str]:
    """Every URL the page loads or names: src/href attributes and the script's url."""
    return re.findall(r'(?:src|href)="([^"]*)"', html) + re.findall(r"url: '([^']*)'", html)


async def test_docs_reference_only_the_apps_own_assets(
    tmp_path: Path, session_factory: Any
) -> None:
    async with client_of(make_app(tmp_path, session_factory)) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        urls = referenced(page.text)
        assert len(urls) == 4, urls  # the script, the stylesheet, the icon, the document
        assert not re.search(r"https?://|//cdn|jsdelivr|unpkg", page.text)
        for url in urls:
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc and url.startswith("/"), url
        assert "/openapi.json" in urls
        for url in urls:
            if url == "/openapi.json":
                continue
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["content-type"].startswith(ASSET_TYPES[Path(url).suffix]), url
            assert len(asset.content) > 100
        bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
        assert b"SwaggerUIBundle" in bundle.content
        assert "max-age" in bundle.headers["cache-control"]
        # only the listed files: not the package's other files, nor anything else
        for other in ("redoc.standalone.js", "__init__.py", "nope.js"):
            refused = await client.get(f"/docs/assets/{other}")
            assert refused.status_code == 404, other
            assert refused.json()["error"]["code"] == "not_found"
        for other in ("..%2Fcore.py", "../core.py", "%2E%2E/core.py"):
            assert (await client.get(f"/docs/assets/{other}")).status_code == 404, other


async def test_the_openapi_document_lists_the_api(tmp_path: Path, session_factory: Any) -> None:
    async with client_of(make_app(tmp_path, session_factory)) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = json.loads(response.text)
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in ("/healthz", "/readyz", "/metrics", "/api/v1/webhooks/payments/{source}"):
        assert path in paths, path
    assert not [path for path in paths if path.startswith("/docs")]
    webhook = paths["/api/v1/webhooks/payments/{source}"]["post"]
    headers = {p["name"] for p in webhook["parameters"] if p["in"] == "header"}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    body = webhook["requestBody"]["content"]["application/json"]["schema"]
    assert {"shop_id", "cart_id", "attempt_id", "status", "amount"} <= set(body["properties"])
    assert "401" in webhook["responses"] and "503" in webhook["responses"]


async def test_swagger_ui_renders_in_chromium_without_leaving_the_app(
    tmp_path: Path, dev_env: Any, session_factory: Any
) -> None:
    outside: list[str] = []
    async with served(web_settings(tmp_path), dev_env.client, session_factory) as server:
        origin = f"http://127.0.0.1:{server.port}"
        async with chromium() as browser:
            page = await browser.new_page()

            async def guard(route: Any) -> None:
                url = route.request.url
                if url.startswith(origin) or url.startswith("data:"):
                    await route.continue_()
                else:
                    outside.append(url)
                    await route.abort()

            await page.route("**/*", guard)
            await page.goto(f"{origin}/docs")
            operation = page.locator(
                "#operations-webhooks-payment_webhook_api_v1_webhooks_payments__source__post"
            )
            await operation.wait_for(timeout=15_000)
            assert await page.locator(".opblock").count() >= 3
            await browser.close()
    assert outside == []
