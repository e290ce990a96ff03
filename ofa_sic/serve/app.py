"""The FastAPI application of `ofa-sic serve`: the JSON API, the web page and the upload limits.

Routes: `POST /caption` (multipart: `image` file, one or more `style` fields), `GET /styles`,
`GET /health`, `GET /` (the page), and FastAPI's `/openapi.json` and `/docs`. Every error is JSON
`{"detail": "..."}` with a 4xx code naming the problem (5xx only when generation itself fails):

- 411 a POST without a Content-Length header; 413 a request body over `max_upload_bytes` (refused
  before it is read) or an image with more than `max_pixels` pixels (refused before its pixels are
  decoded); 415 bytes that are no image; 422 a truncated or corrupt image, no image field, no style,
  an unknown style, more styles than `max_styles`.
"""
import asyncio
import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import anyio
import torch
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from ofa_sic.cli.caption import resolve_styles
from ofa_sic.data.images import ImageDecodeError, ImageTooLargeError, NotAnImageError, decode_image
from ofa_sic.data.styles import UnknownStyleError
from ofa_sic.serve.batcher import CaptionBatcher, QueueFullError

PAGE = Path(__file__).with_name("page.html")
#: images decoded at once (each decode holds the full-size picture in memory)
DECODE_THREADS = 2


@dataclass
class ServeLimits:
    """What one request may send."""

    max_upload_bytes: int
    max_pixels: int
    max_styles: int


class UploadSizeLimit:
    """ASGI middleware: a request with a body must state its Content-Length (411), at most `max_bytes` (413).

    The check reads only the headers, so an oversized upload is refused before its body is received.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            problem = self.problem(dict(scope["headers"]))
            if problem:
                status, detail = problem
                await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def problem(self, headers: dict) -> Optional[Tuple[int, str]]:
        """(status, detail) when the headers refuse the body, else None."""
        length = headers.get(b"content-length")
        if length is None:
            return 411, "send the request with a Content-Length header (chunked uploads are not accepted)"
        try:
            size = int(length)
        except ValueError:
            return 400, f"Content-Length {length.decode('latin-1')!r} is not a number"
        if size > self.max_bytes:
            return 413, (f"the upload is {size} bytes, over the limit of {self.max_bytes} bytes "
                         "(the server's --max-upload-mb); send a smaller image")
        return None


def validation_detail(error: RequestValidationError) -> str:
    """FastAPI's list of validation problems as one sentence."""
    parts = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
        parts.append(f"{where}: {problem.get('msg', 'invalid')}" if where else problem.get("msg", "invalid"))
    return "invalid request: " + "; ".join(parts)


def build_app(captioner, batcher: CaptionBatcher, limits: ServeLimits, settings: dict) -> FastAPI:
    """The application captioning with `captioner` (a loaded Captioner) through `batcher`.

    settings: what the server states at /health besides its limits (checkpoint, generation options, ...).
    """
    app = FastAPI(title="ofa-sic serve", description="Stylized image captions from a style_caption checkpoint.")
    app.add_middleware(UploadSizeLimit, max_bytes=limits.max_upload_bytes)
    decode_limiter = anyio.CapacityLimiter(DECODE_THREADS)
    page = PAGE.read_text(encoding="utf-8")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        return JSONResponse({"detail": validation_detail(error)}, status_code=422)

    def decode_upload(data: bytes) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Upload bytes -> (uint8 [3, S, S] model input, (width, height) of the picture)."""
        image = decode_image(io.BytesIO(data), max_pixels=limits.max_pixels)
        return captioner.image_tensor(image), image.size

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return page

    @app.get("/styles", summary="The checkpoint's styles, in its order")
    async def styles():
        return {"styles": captioner.styles.names}

    @app.get("/health", summary="200 once the model is loaded, with the server's settings and limits")
    async def health():
        return {
            "status": "ok", **settings, "limits": asdict(limits),
            "batching": {"max_batch": batcher.max_batch, "batch_wait_ms": batcher.max_wait_s * 1000,
                         "max_waiting": batcher.max_waiting,
                         "generation_calls": batcher.calls, "rows_captioned": batcher.rows},
        }

    @app.post("/caption", summary="Caption an image in one or more styles")
    async def caption(
        image: Optional[UploadFile] = File(None, description="the picture (JPEG, PNG, WebP, ...)"),
        style: List[str] = Form([], description="a style name (repeat the field for several; see GET /styles)"),
    ):
        started = time.monotonic()
        if image is None:
            raise HTTPException(422, "no image: send the picture as the multipart file field `image`")
        if not style:
            raise HTTPException(422, "no style: add one or more `style` fields (GET /styles lists them)")
        if len(style) > limits.max_styles:
            raise HTTPException(422, f"too many styles: {len(style)} given, at most {limits.max_styles} per request "
                                     "(the server's --max-styles)")
        try:
            names = resolve_styles(captioner.styles, style)
        except UnknownStyleError as error:
            raise HTTPException(422, str(error)) from None
        data = await image.read()
        try:
            pixels, (width, height) = await anyio.to_thread.run_sync(decode_upload, data, limiter=decode_limiter)
        except NotAnImageError as error:
            raise HTTPException(415, f"{image.filename or 'the upload'}: {error}") from None
        except ImageTooLargeError as error:
            raise HTTPException(413, f"{image.filename or 'the upload'}: {error}; send a smaller image (this server "
                                     f"takes at most {limits.max_pixels} pixels, its --max-megapixels)") from None
        except ImageDecodeError as error:
            raise HTTPException(422, f"{image.filename or 'the upload'}: truncated or corrupt image ({error})") from None
        try:
            futures = batcher.submit(pixels, names)
        except QueueFullError as error:
            raise HTTPException(503, f"busy: {error}; retry in a moment", headers={"Retry-After": "1"}) from None
        try:
            rows = await asyncio.gather(*(asyncio.wrap_future(future) for future in futures))
        except Exception as error:  # generation failed: this request's rows get a 500, the server goes on
            raise HTTPException(500, f"captioning failed: {type(error).__name__}: {error}") from None
        return {
            "captions": [{"style": name, "caption": " ".join(row.caption.split()),
                          "seconds": round(row.finished_at - started, 3)} for name, row in zip(names, rows)],
            "seconds": round(time.monotonic() - started, 3),
            "image": {"width": width, "height": height},
        }

    return app
