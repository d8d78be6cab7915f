#!/usr/bin/env python3
"""The demo's stand-in for the platform's sign-in proxy: listens on loopback and
forwards every request to the console with `Authorization: Bearer <token>`, the token
read from a file. The console itself never sees a request without the proxy's header.

Usage: demo-proxy.py LISTEN_PORT CONSOLE_PORT TOKEN_FILE
"""
import http.client
import http.server
import sys

LISTEN, UPSTREAM, TOKEN_FILE = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open(TOKEN_FILE, encoding="utf-8") as f:
    TOKEN = f.read().strip()
HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "authorization"}


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["Authorization"] = f"Bearer {TOKEN}"
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=30)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as e:
            self.send_error(502, f"console unreachable: {e}")
            return
        finally:
            conn.close()
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_HEAD = forward

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy).serve_forever()
