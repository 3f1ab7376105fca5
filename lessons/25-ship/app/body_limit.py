"""413 Content Too Large for a request body over MAX_BODY_BYTES, before the body is read.

Hand-made, on purpose. FastAPI 0.165 has FastAPI(max_body_size=...), and it counts a streamed
body well, but a body whose Content-Length is already too large gets Starlette's plain-text
413, sent from outside every middleware: not JSON, no `detail`, and no CORS header, so a page
cannot even read the status. This middleware answers both cases the way the rest of the API
answers errors, {"detail": "..."}, and through the other middleware.
"""

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class LimitBody:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes
        self.detail = f"The request body may have at most {max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Said in advance: answered before a single byte of the body is read.
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": self.detail}, status_code=413)(scope, receive, send)
            return
        received = 0

        # Not said, or said wrong (a chunked body has no Content-Length): counted as the chunks
        # arrive; the one that goes over the limit ends the reading. FastAPI lets an
        # HTTPException raised while it reads the body through, to the usual JSON answer.
        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(status_code=413, detail=self.detail)
            return message

        await self.app(scope, counting_receive, send)
