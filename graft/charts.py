"""Render Vega-Lite specs to SVG/PNG offline (vl-convert: Vega in an embedded JS engine, no browser)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

FORMATS = ("svg", "png")


def renderers() -> dict[str, Callable[[dict], str | bytes]]:
    import vl_convert as vlc  # imported late: only rendering needs it, the specs do not

    return {"svg": vlc.vegalite_to_svg, "png": lambda spec: vlc.vegalite_to_png(spec, scale=2)}


def render(spec: dict, path: Path, renderer: Callable[[dict], str | bytes]) -> Path:
    """Write one rendering of `spec` to `path` (its folder made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = renderer(spec)
    if isinstance(image, bytes):
        path.write_bytes(image)
    else:
        path.write_text(image, encoding="utf-8")
    return path
