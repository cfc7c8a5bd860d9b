"""`GET /`: the playground, one small page to try infilling in a browser (`static/playground.html`).

The page is self-contained (inline CSS and JS, no CDN: it works offline) and talks to the server's own API: it sends
the code before and after the cursor to `POST /infill` with `stream: true` and writes the middle in place as it
arrives, marked. It holds no data, so it is served without the API key; the page asks for the key and sends it.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from starlette.responses import HTMLResponse

router = APIRouter()
PAGE = resources.files(__package__).joinpath("static", "playground.html").read_text(encoding="utf-8")


@router.get("/", include_in_schema=False)
async def playground() -> HTMLResponse:
    """The playground page."""
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": "frame-ancestors 'none'"})


__all__ = ["PAGE", "router"]
