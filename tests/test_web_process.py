"""``cartkeeper web`` as it is deployed: its own process, configured by its environment,
on its own event loop (uvloop where installed), serving a storefront's update and
stopping gracefully on SIGTERM. And what keeps a request's overhead small: no
dependency of a route runs in the thread pool, and the storefront's routes are matched
first."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.settings import Settings
from starter.web.api_keys import create_key
from starter.web.app import create_app
from starter.web.deps import utc_now
from starter.web.server import fast_loop
from tests.conftest import new_id

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _ready(url: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as http:
        for _ in range(300):
            if process.returncode is not None:
                assert process.stderr is not None
                raise AssertionError((await process.stderr.read()).decode()[-3000:])
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("cartkeeper web was not ready in 30 s")


async def test_cartkeeper_web_serves_a_storefront_and_stops_on_sigterm(
    dev_env: WorkflowEnvironment, dev_worker: Worker, session_factory: Any, settings: Settings
) -> None:
    shop = new_id("webproc")
    _key, plain = await create_key(session_factory, shop, "storefront", now=utc_now())
    port = _free_port()
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": dev_env.client.namespace,
        "DATABASE_URL": settings.resolved_database_url(),
        "CARTKEEPER_TASK_QUEUE": settings.task_queue,
        "CARTKEEPER_DATA_DIR": str(settings.data_dir),
        "CARTKEEPER_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter.cli",
        "web",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        cwd=str(REPO),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await _ready(url, process)
        body = {
            "lines": [{"sku": "tea", "name": "Tea", "quantity": 2, "unit_price": 450}],
            "currency": "EUR",
        }
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {plain}"}, timeout=30.0
        ) as http:
            cart_id = new_id()
            answer = await http.put(f"/api/v1/carts/{cart_id}/lines", json=body)
            assert answer.status_code == 200, answer.text
            view = answer.json()
            assert (view["shop_id"], view["cart_id"], view["total"]) == (shop, cart_id, 900)
            assert view["state"] == "active"
            again = await http.get(f"/api/v1/carts/{cart_id}")
            assert again.json()["version"] == view["version"]
            refused = await http.put(
                f"/api/v1/carts/{cart_id}/lines", json={**body, "currency": "euro"}
            )
            assert refused.status_code == 422
            assert refused.json()["error"]["code"] == "invalid_currency"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    assert process.stdout is not None
    out = (await process.stdout.read()).decode()
    assert f"cartkeeper web on {url}" in out
    assert code == 0, out


def test_cartkeeper_web_runs_on_uvloop_where_installed() -> None:
    factory = fast_loop()
    if sys.platform == "win32":  # pragma: no cover
        assert factory is None
        return
    import uvloop

    assert factory is uvloop.new_event_loop
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def _calls(dependant: Dependant) -> list[Any]:
    found = [dependant.call] if dependant.call is not None else []
    for sub in dependant.dependencies:
        found.extend(_calls(sub))
    return found


def _runs_on_the_loop(call: Any) -> bool:
    """FastAPI awaits a coroutine function (or an object whose ``__call__`` is one) on
    the event loop; any other callable it runs in the thread pool."""
    if inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call):
        return True
    dunder = getattr(type(call), "__call__", None)  # noqa: B004 - the instance's method
    return inspect.iscoroutinefunction(dunder) or inspect.isasyncgenfunction(dunder)


@pytest.fixture
def routes(settings: Settings, session_factory: Any) -> list[tuple[str, APIRoute]]:
    """The app's API routes with their whole paths, in the order a request is matched."""
    app = create_app(settings, session_factory=session_factory)
    return [
        (str(context.path), context.route)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.route, APIRoute)
    ]


def test_no_dependency_of_an_api_route_runs_in_the_thread_pool(
    routes: list[tuple[str, APIRoute]],
) -> None:
    """A plain ``def`` dependency sends every request through the thread pool and back."""
    api = [(path, route) for path, route in routes if path.startswith(("/api/", "/healthz"))]
    assert len(api) > 50
    in_threads = sorted(
        {
            f"{path}: {getattr(call, '__qualname__', type(call).__qualname__)}"
            for path, route in api
            for call in _calls(route.dependant)
            if not _runs_on_the_loop(call)
        }
    )
    assert in_threads == []


def test_the_storefront_routes_are_matched_before_the_consoles(
    routes: list[tuple[str, APIRoute]],
) -> None:
    paths = [path for path, _route in routes]
    first_admin = min(
        i for i, path in enumerate(paths) if path.startswith(("/admin", "/api/v1/admin"))
    )
    storefront = [i for i, path in enumerate(paths) if path.startswith("/api/v1/carts")]
    webhooks = [i for i, path in enumerate(paths) if path.startswith("/api/v1/webhooks")]
    assert storefront and webhooks
    assert max(storefront + webhooks) < first_admin
