#!/usr/bin/env python3
"""A stand-in broker node for the fault tests, serving go-micro's HTTP broker
protocol in plain HTTP with a behaviour that the test switches at run time.

usage: fault_server.py MODE_FILE EVENTS_FILE PORT_FILE

The server listens on 127.0.0.1 on a free port and writes the port to
PORT_FILE. Before each request it reads MODE_FILE:
  200   record the message and respond 200;
  500   respond 500 (the message counts as not received);
  hang  read the request and send nothing until the mode changes, then
        close the connection without a response.
Every request appends one line "MODE NODE_ID BODY" to EVENTS_FILE, where
BODY is the decoded message body; only lines starting with 200 are
deliveries. A hung request is bounded by HANG_LIMIT_S seconds.
"""
import base64
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse

HANG_LIMIT_S = 300

mode_file, events_file, port_file = sys.argv[1:4]
events_lock = threading.Lock()


def read_mode():
    with open(mode_file) as f:
        return f.read().strip()


def record(mode, node_id, body):
    with events_lock, open(events_file, "a") as f:
        f.write(f"{mode} {node_id} {body}\n")


class Node(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        doc = json.loads(self.rfile.read(length))
        body = base64.b64decode(doc["Body"]).decode()
        node_id = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query).get("id", [""])[0]
        mode = read_mode()
        record(mode, node_id, body)
        if mode == "hang":
            self.hang()
            return
        status = 200 if mode == "200" else 500
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def hang(self):
        deadline = time.monotonic() + HANG_LIMIT_S
        while read_mode() == "hang" and time.monotonic() < deadline:
            time.sleep(0.05)
        self.close_connection = True


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Node)
server.daemon_threads = True
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
# Renamed into place so that a reader never sees a partly written port.
os.replace(port_file + ".tmp", port_file)
server.serve_forever()
