"""`ofa-sic serve`: a web page and a JSON API that caption images with a checkpoint, batched.

The model is loaded once, then the server listens (default http://127.0.0.1:8000/): the page at `/`,
`POST /caption` (multipart: an `image` file and one or more `style` fields), `GET /styles`,
`GET /health` (settings and limits), `GET /docs` (OpenAPI). Rows from concurrent requests, and the
styles of one request, are captioned together: up to --max-batch rows per generation call, waiting at
most --batch-wait-ms for rows to join. Captions equal `ofa-sic caption`'s for the same image, style and
generation options. When it listens, the server prints `ofa-sic serve: listening on URL`.
"""
import argparse
import logging
import socket
import sys

HELP = "serve a captioning web page and JSON API (batched) with a checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ofa_sic.cli.generation_options import add_generation_arguments

    add_generation_arguments(parser, batch_size=False)
    add = parser.add_argument
    add("--host", default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 lets every machine that "
             "reaches this one use it)")
    add("--port", type=int, default=8000, help="port to listen on; 0 picks a free one (default: 8000)")
    add("--max-batch", type=int, default=16, metavar="N", help="rows (image, style) per generation call (default: 16)")
    add("--batch-wait-ms", type=float, default=20.0, metavar="MS",
        help="how long a row may wait for others to share its generation call (default: 20)")
    add("--max-waiting", type=int, default=256, metavar="N",
        help="most rows (image, style) waiting for generation; a request that would pass it gets 503 (default: 256)")
    add("--max-upload-mb", type=float, default=10.0, metavar="MB",
        help="largest request body (image and form fields) in megabytes, refused with 413 (default: 10)")
    add("--max-megapixels", type=float, default=40.0, metavar="MP",
        help="largest image in millions of pixels, refused with 413 before decoding (default: 40)")
    add("--max-styles", type=int, default=16, metavar="N", help="most styles one request may ask for (default: 16)")


def limits_from_args(args: argparse.Namespace):
    """ServeLimits from the options (checked)."""
    from ofa_sic.serve.app import ServeLimits

    for flag, value in (("--max-batch", args.max_batch), ("--max-styles", args.max_styles),
                        ("--max-waiting", args.max_waiting)):
        if value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    for flag, value in (("--max-upload-mb", args.max_upload_mb), ("--max-megapixels", args.max_megapixels)):
        if value <= 0:
            raise ValueError(f"{flag} must be positive, got {value}")
    if args.batch_wait_ms < 0:
        raise ValueError(f"--batch-wait-ms cannot be negative, got {args.batch_wait_ms}")
    return ServeLimits(max_upload_bytes=int(args.max_upload_mb * 1_000_000),
                       max_pixels=int(args.max_megapixels * 1_000_000), max_styles=args.max_styles)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) and listening; OSError names the address when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({error.strerror}); pass another --port or --host") from None
    sock.listen(128)
    return sock


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ofa_sic.cli.generation_options import options_from_args
    from ofa_sic.generation.captioner import Captioner
    from ofa_sic.serve.app import build_app
    from ofa_sic.serve.batcher import CaptionBatcher

    options = options_from_args(args)
    limits = limits_from_args(args)
    sock = listening_socket(args.host, args.port)  # before loading: a taken port fails fast
    print(f"ofa-sic serve: loading {args.path}", file=sys.stderr, flush=True)
    captioner = Captioner(args.path, options, data=args.data, bpe_dir=args.bpe_dir, cpu=args.cpu,
                          precision=args.precision)
    logging.getLogger().setLevel(logging.INFO)  # fairseq's imports set DEBUG, which would log every upload's bytes
    batcher = CaptionBatcher(captioner.caption_rows, args.max_batch, args.batch_wait_ms / 1000, args.max_waiting)
    settings = {"checkpoint": args.path, "device": captioner.device.type, "precision": args.precision,
                "generation": options.as_dict(), "styles": len(captioner.styles)}
    app = build_app(captioner, batcher, limits, settings)
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    print(f"ofa-sic serve: listening on http://{shown_host}:{port}/ ({len(captioner.styles)} styles, "
          f"generation {options.as_dict()}, --max-batch {args.max_batch}, --batch-wait-ms {args.batch_wait_ms:g})",
          flush=True)
    if host not in ("127.0.0.1", "::1", "localhost"):
        print(f"ofa-sic serve: {host} is reachable from other machines: anyone who reaches it can caption images",
              file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    try:
        server.run(sockets=[sock])
    finally:
        batcher.stop()
        sock.close()
    return 0
