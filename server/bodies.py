"""Reading request bodies: size limit (413), stall limit (408), client gone, multipart ``file`` parts.

A body is read chunk by chunk with a bound on the wait for each: a client
that declares a megabyte and sends a hundred bytes holds a connection and a
handler for ``body_timeout_s``, not until it gives up. uvicorn's own timeout
covers only idle keep-alive connections.
"""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect, Request

from server.errors import ApiError

__all__ = ["IMAGE_TYPES", "image_bytes", "read_body"]

#: Content types accepted for an encoded image body.
IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/jpg", "image/webp", "image/bmp", "image/tiff", "image/x-ms-bmp"}
)


async def read_body(request: Request, limit: int, idle_timeout: float) -> bytes:
    """The whole body: 413 past ``limit`` bytes, 408 (and the connection closes) if it stalls ``idle_timeout`` s."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    while True:
        try:
            message = await asyncio.wait_for(request.receive(), idle_timeout)
        except TimeoutError:
            # Closing matters: the rest of the body may still come, and must not be read as a next request.
            raise ApiError(
                408, f"the request body stalled: nothing came for {idle_timeout:g} s", {"Connection": "close"}
            ) from None
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replayed(request: Request, body: bytes) -> Request:
    """A request on the same scope whose body is ``body``, already read (public Starlette API: a ``Request``
    over a ``receive`` that hands the body over once), for the form parser."""
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


async def image_bytes(request: Request, limit: int, idle_timeout: float) -> bytes:
    """The encoded image: the raw body, or the multipart ``file`` part."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind and kind != "multipart/form-data" and kind not in IMAGE_TYPES and kind != "application/octet-stream":
        raise ApiError(415, f"unsupported content type {kind!r}; send an image (PNG, JPEG, WebP, BMP, TIFF)")
    body = await read_body(request, limit, idle_timeout)
    if kind != "multipart/form-data":
        return body
    try:
        form = await _replayed(request, body).form(max_files=1, max_fields=8)
    except Exception as exc:  # malformed multipart of any kind
        raise ApiError(400, f"malformed multipart body: {getattr(exc, 'detail', exc)}") from None
    try:
        if not form:  # nothing parsed out of a body that said it was multipart: it was not
            raise ApiError(400, "malformed multipart body: no parts")
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(422, "multipart body needs a 'file' part holding the image (a file upload)")
        return await upload.read()
    finally:
        await form.close()  # spooled temporary files go now, not at garbage collection
