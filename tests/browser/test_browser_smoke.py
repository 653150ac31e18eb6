"""The browser fixture itself works: Chromium renders a page served over a real socket."""

from __future__ import annotations

import http.server
import threading
from typing import Any


def test_chromium_renders_a_local_page(page: Any) -> None:
    body = b"<!doctype html><title>pushrelay</title><h1 id=t>hello</h1>"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        assert page.locator("#t").inner_text() == "hello"
        assert page.title() == "pushrelay"
    finally:
        server.shutdown()
        server.server_close()
