"""The web app (FastAPI): ``create_app(settings)``.

Routers by concern: ``starter.web.links`` (the e-mail links), ``starter.web.health``
(``/healthz``, ``/readyz``); the storefront and admin API will be more routers on the same
``WebContext``. The app reads the read model (``DATABASE_URL``) and reaches the cart
workflows through a ``Signaller``: by default a ``TemporalSignaller`` over
``temporal_client_factory`` (``starter.connect.connect``: the SDK's environment
configuration). No page loads anything from elsewhere (no CDN: ``/docs`` serves Swagger
UI's own files, ``starter.web.docs``). ``starter.web.metrics`` counts every request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from activities.db import SessionFactory, make_engine, make_session_factory
from activities.links import LinkRefused, Links
from activities.settings import Settings
from starter.connect import connect
from starter.errors import DATABASE_UNAVAILABLE
from starter.web import admin_pages, api_errors, docs, health, links, metrics, storefront, webhooks
from starter.web.admin_api import install as install_admin_api
from starter.web.deps import WebContext, utc_now
from starter.web.pages import error_page
from starter.web.temporal import ClientFactory, Signaller, TemporalSignaller

log = logging.getLogger("cartkeeper.web")


def create_app(
    settings: Settings,
    *,
    temporal_client_factory: ClientFactory = connect,
    signaller: Signaller | None = None,
    session_factory: SessionFactory | None = None,
    links_signer: Links | None = None,
    now: Callable[[], datetime] = utc_now,
) -> FastAPI:
    """The app. ``session_factory``: the read model's sessions (default: an engine on
    ``settings``' database, disposed when the app shuts down); ``signaller`` replaces the
    Temporal one (tests); ``links_signer``: default ``Links.from_settings(settings)``."""
    engine = None
    if session_factory is None:
        engine = make_engine(settings.resolved_database_url())
        session_factory = make_session_factory(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if engine is not None:
                await engine.dispose()

    app = FastAPI(
        title="cartkeeper",
        summary="Recovery and unsubscribe links of reminder e-mail; health checks.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's loads Swagger UI from a CDN: starter.web.docs instead
        redoc_url=None,
        exception_handlers={
            LinkRefused: links.link_refused,
            SQLAlchemyError: _database_unavailable,
            OSError: _database_unavailable,
        },
    )
    app.state.context = WebContext(
        sessions=session_factory,
        links=links_signer or Links.from_settings(settings),
        signaller=signaller or TemporalSignaller(temporal_client_factory),
        now=now,
        settings=settings,
    )
    api_errors.install(app)
    metrics.install(app)
    # A request is matched against the routes in this order, one after the other: the
    # storefront's and the gateways' calls, the most frequent, first.
    app.include_router(storefront.router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    app.include_router(links.router)
    app.include_router(metrics.router)
    app.include_router(docs.router)
    admin_pages.install(app, settings)
    install_admin_api(app)
    return app


async def _database_unavailable(_request: Request, error: Exception) -> Response:
    log.error("the read model is unavailable: %r", error)
    return error_page(
        503,
        DATABASE_UNAVAILABLE,
        "Please try again in a moment",
        "The shop's service is not available right now. Your link still works: try it"
        " again in a few minutes.",
    )
