"""``/docs``: the interactive API documentation (Swagger UI) without any CDN.

FastAPI's own ``/docs`` loads Swagger UI from a CDN (and its favicon from fastapi's
site); this page is the same ``get_swagger_ui_html`` with every asset served by the app
itself (``/docs/assets/...``, a fixed list of files). The files are Swagger UI 5's, as
the ``fastapi-offline`` package ships them: FastAPI writes OpenAPI 3.1, which Swagger
UI 4 (the ``swagger-ui-bundle`` package's) refuses to render. The online validator
badge is off (it would call validator.swagger.io). The document stays at
``/openapi.json``.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from starter.web.api_errors import ApiError, WebErrorCode

router = APIRouter(include_in_schema=False)

DOCS = "/docs"
ASSETS = "/docs/assets"
#: where the package keeps Swagger UI's files
ASSET_DIR = Path(fastapi_offline.__file__).parent / "static"
#: the files the page loads, and their types
ASSET_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
#: assets are the installed package's: a day in browsers' caches
ASSET_CACHE = "public, max-age=86400"


@router.get(DOCS)
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over the app's OpenAPI document, with local assets only."""
    root = request.scope.get("root_path", "").rstrip("/")
    app = request.app
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - API",
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get(ASSETS + "/{name}")
async def swagger_ui_asset(name: str) -> FileResponse:
    """One of Swagger UI's files (only those in ``ASSET_FILES``)."""
    media_type = ASSET_FILES.get(name)
    if media_type is None:
        raise ApiError(WebErrorCode.NOT_FOUND, "no such file")
    return FileResponse(
        ASSET_DIR / name, media_type=media_type, headers={"Cache-Control": ASSET_CACHE}
    )
