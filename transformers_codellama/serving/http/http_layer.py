"""`HTTPLayer`: the base of the server's pure ASGI layers (middleware)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class HTTPLayer:
    """A pure ASGI layer over HTTP requests: other scopes (lifespan, WebSocket) go straight to `app`.

    Pure ASGI rather than Starlette's `BaseHTTPMiddleware`, which runs the app in a task of its own and relays each
    streamed chunk through a memory stream. Subclasses implement `handle`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request through `self.app`."""
        raise NotImplementedError


__all__ = ["HTTPLayer"]
