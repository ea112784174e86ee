"""The API docs pages (`/docs`, `/redoc`), served with every asset from this service.

FastAPI's own pages load Swagger UI and Redoc from a CDN, web fonts from Google and a favicon
from another host: in a closed network they render nothing. The `fastapi-offline` package
ships the Swagger UI and Redoc bundles (Apache 2.0 / MIT, see its licence files); we serve them
under `/docs/assets/`, no font beyond the browser's own, no external validator badge. Redoc's
bundle loads its attribution logo from cdn.redoc.ly: we serve it with that one URL replaced by
an inline blank image (checked in a real browser by tests/contract/test_docs_browser.py).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response

ASSETS_PATH = "/docs/assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"

REDOC_BUNDLE = "redoc.standalone.js"
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_BLANK_IMAGE = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"

# Swagger UI's default validator badge loads an image from validator.swagger.io.
SWAGGER_UI_PARAMETERS = {
    "validatorUrl": None,
    "persistAuthorization": True,
    "displayRequestDuration": True,
}


def install_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Mount the offline assets and the two pages (the app was built with both URLs None)."""
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(f"{ASSETS_PATH}/{REDOC_BUNDLE}", include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(
            _offline_redoc_bundle(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Redoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/{REDOC_BUNDLE}",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )


@cache
def _offline_redoc_bundle() -> bytes:
    bundle = (ASSETS_DIR / REDOC_BUNDLE).read_bytes()
    return bundle.replace(_REDOC_LOGO, _BLANK_IMAGE)
