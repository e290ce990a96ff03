"""`ofa-sic serve`: captions over HTTP (a JSON API and a web page), batched across requests.

- `batcher.py`: rows (image tensor, style) from concurrent requests -> generation calls of up to N rows;
- `app.py`: the FastAPI application (routes, upload limits, JSON errors);
- `page.html`: the web page served at `/` (self-contained: no external scripts, styles or fonts).
"""
