#!/usr/bin/env python3
"""The demo's and the browser tests' stand-in for the platform's sign-in proxy: listens
on loopback and forwards every request to the console with `Authorization: Bearer
<token>`, the token read from a file; a websocket upgrade (a VM's screen or serial
console) is forwarded the same way, then tunnelled both ways. The console itself never
sees a request without the proxy's header.

Usage: demo-proxy.py LISTEN_PORT CONSOLE_PORT TOKEN_FILE
"""
import http.client
import http.server
import socket
import sys
import threading

LISTEN, UPSTREAM, TOKEN_FILE = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open(TOKEN_FILE, encoding="utf-8") as f:
    TOKEN = f.read().strip()
HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "authorization"}


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def tunnel(self):
        """Replays the upgrade request upstream with the token, then copies bytes."""
        try:
            up = socket.create_connection(("127.0.0.1", UPSTREAM), timeout=30)
        except OSError as e:
            self.send_error(502, f"console unreachable: {e}")
            return
        up.settimeout(None)
        lines = [f"{self.command} {self.path} HTTP/1.1"]
        for k, v in self.headers.items():
            if k.lower() != "authorization":
                lines.append(f"{k}: {v}")
        lines.append(f"Authorization: Bearer {TOKEN}")
        up.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.close_connection = True
        down = self.connection

        def pump(src, dst):
            try:
                while chunk := src.recv(65536):
                    dst.sendall(chunk)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        back = threading.Thread(target=pump, args=(up, down), daemon=True)
        back.start()
        pump(down, up)
        back.join()
        up.close()

    def forward(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self.tunnel()
            return
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
