"""The browser UI: static files under /ui (plain ES modules, no build step), the offline Vega bundle
at /ui/vendor/vega.js, and / redirecting to /ui/.

Include this router WITHOUT the token dependency: a browser cannot attach a bearer token to page
loads; the pages hold no data, and every API call they make carries the token the user pasted."""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse, Response

UI_DIR = Path(__file__).parent / "ui"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}

router = APIRouter(include_in_schema=False)


@functools.cache
def _vega_bundle() -> bytes:
    # vl-convert's Vega + Vega-Lite + vega-embed (sets window.vegaEmbed); built once per process
    from graft.bench.report import javascript_bundle

    return javascript_bundle().encode()


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui")
def ui_no_slash() -> RedirectResponse:
    # relative module paths in index.html resolve against /ui/, not /
    return RedirectResponse("/ui/")


@router.get("/ui/vendor/vega.js")
def vega_bundle() -> Response:
    return Response(_vega_bundle(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


@router.get("/ui/{path:path}")
def ui_file(path: str) -> FileResponse:
    """A file of the UI folder; anything outside it (.., absolute paths, links out) is a 404."""
    root = UI_DIR.resolve()
    target = (root / (path or "index.html")).resolve()
    if not target.is_relative_to(root) or not target.is_file() or target.suffix not in TYPES:
        raise HTTPException(404, "no such UI file")
    # no-cache: the browser revalidates, so a new graft version never runs stale modules
    return FileResponse(target, media_type=TYPES[target.suffix], headers={"Cache-Control": "no-cache"})
