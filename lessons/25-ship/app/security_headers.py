"""Headers that tell a browser to be strict with the API's answers.

Hand-made, as a pure ASGI middleware of a few lines: Starlette and FastAPI have none for this,
and it changes nothing but the headers, so it works for JSON, streams and 413s alike.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADERS = [
    # Take the Content-Type at its word: never guess that a JSON answer (which may hold text a
    # user wrote, "<script>..." say) is HTML or a script.
    (b"x-content-type-options", b"nosniff"),
    # Links followed from an answer do not tell the other site which URL they came from.
    (b"referrer-policy", b"no-referrer"),
]
# The API's answers are data, never a page: nothing in them may load or run anything, and no
# site may show them in a frame. Not for /docs and /redoc, FastAPI's own pages (HTML that loads
# Swagger UI from a CDN): an answer that is HTML keeps its own rules.
DATA_ONLY = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # a WebSocket has no answer headers to add to
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                is_page = any(name == b"content-type" and value.startswith(b"text/html")
                              for name, value in headers)
                message["headers"] = headers + HEADERS + ([] if is_page else [DATA_ONLY])
            await send(message)

        await self.app(scope, receive, send_with_headers)
