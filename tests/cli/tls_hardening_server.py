#!/usr/bin/env python3
"""HTTPS server for tests/cli/test_tls_hardening.sh that speaks exactly one TLS version.

Usage: tls_hardening_server.py CERT KEY VERSION PORT_FILE LOG_FILE LIFETIME_S

VERSION is 1.2 or 1.3. The server listens on 127.0.0.1 on a free port, writes
the port to PORT_FILE, responds to every POST with 200 and appends one line
per request to LOG_FILE: the negotiated protocol and the request path. It exits
after LIFETIME_S seconds, so a test that dies cannot leave it running.
"""
import http.server
import ssl
import sys
import threading

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class Handler(http.server.BaseHTTPRequestHandler):
    log_file = ""

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        with open(self.log_file, "a", encoding="utf-8") as log:
            log.write(f"{self.connection.version()} POST {self.path}\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):  # noqa: A002 (signature fixed by the base class)
        pass


def main():
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    cert, key, version, port_file, log_file, lifetime = sys.argv[1:]
    if version not in VERSIONS:
        sys.exit(f"TLS version {version!r} is not supported; use 1.2 or 1.3")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = VERSIONS[version]
    context.maximum_version = VERSIONS[version]
    context.load_cert_chain(cert, key)

    Handler.log_file = log_file
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Timer(float(lifetime), server.shutdown).start()
    with open(port_file, "w", encoding="utf-8") as f:
        f.write(f"{server.server_address[1]}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
