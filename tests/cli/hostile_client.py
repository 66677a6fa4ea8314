#!/usr/bin/env python3
"""Raw-socket HTTP client for test_http_hostile.sh: sends one malformed or
abusive request to a subscriber on loopback and prints what came back.

usage: hostile_client.py [--ca FILE] HOST PORT NODE_ID CASE

Output lines: "status N" for each response, "body TEXT" for the body of
the last one, then "closed" when the server closed the connection or
"open" when it was still open after the wait. Every socket opened is
closed before exit; loops are bounded in count and time.
"""
import socket
import ssl
import sys
import time

WAIT_S = 5.0


def connect(args):
    sock = socket.create_connection((args["host"], args["port"]), timeout=WAIT_S)
    if args["ca"]:
        ctx = ssl.create_default_context(cafile=args["ca"])
        sock = ctx.wrap_socket(sock, server_hostname=args["host"])
    return sock


def read_all(sock, wait=WAIT_S):
    """Reads until the server closes or wait seconds pass; returns (data, closed)."""
    data = b""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, False
        except (ConnectionResetError, ssl.SSLError):
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def report(data, closed):
    body = b""
    for part in data.split(b"HTTP/1.")[1:]:
        print("status", part[2:5].decode())
        body = part.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in part else b""
    print("body", body.decode(errors="replace").strip())
    print("closed" if closed else "open")


def envelope():
    return b'{"Header":{"Micro-Topic":"hostile"},"Body":"aG9zdGlsZQ=="}'


def post(node, fields, body, path=None):
    target = path if path is not None else b"/?id=" + node.encode()
    return b"POST " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + fields + b"\r\n" + body


def chunked(body):
    return b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


def cases(node):
    env = envelope()
    length = b"Content-Length: %d\r\n" % len(env)
    return {
        "valid": post(node, length, env),
        "cl_te": post(node, length + b"Transfer-Encoding: chunked\r\n", chunked(env)),
        "dup_cl_equal": post(node, length + length, env),
        "dup_cl_different": post(node, b"Content-Length: 3\r\n" + length, env),
        "cl_negative": post(node, b"Content-Length: -5\r\n", env),
        "cl_non_numeric": post(node, b"Content-Length: 5x\r\n", env),
        "huge_header": post(node, b"X-Big: " + b"a" * 70000 + b"\r\n" + length, env),
        "huge_request_line": post(node, length, env, b"/?id=" + b"a" * 70000),
        "bare_cr_name": post(node, b"X\rA: b\r\n" + length, env),
        "bare_cr_value": post(node, b"X-A: a\rb\r\n" + length, env),
        "bare_lf": post(node, length, env).replace(b"\r\n", b"\n", 2),
        "many_headers": post(node, b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + length,
                             env),
        "pipelined_garbage": post(node, length, env) + b"\x01\x02 garbage\r\n\r\n",
        "body_too_big": post(node, b"Content-Length: %d\r\n" % (5 << 20), b"a" * (5 << 20)),
        "bad_chunk_size": post(node, b"Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n"),
        "unknown_path": post(node, length, env, b"/unknown?id=" + node.encode()),
        "unknown_method": post(node, length, env).replace(b"POST", b"BREW", 1),
    }


def send_case(args, data):
    sock = connect(args)
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the server may reject before reading everything
        report(*read_all(sock))
    finally:
        sock.close()


def slowloris(args):
    """Sends one byte of a header every second, for 20 s at most."""
    sock = connect(args)
    start = time.monotonic()
    try:
        sock.sendall(b"POST /?id=" + args["node"].encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for _ in range(20):
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                break
            data, closed = read_all(sock, 1.0)
            if closed:
                break
        else:
            closed = False
        print("after %d s" % round(time.monotonic() - start))
        print("closed" if closed else "open")
    finally:
        sock.close()


def stall(args, data):
    """Sends data, then waits up to 20 s for the server to close."""
    sock = connect(args)
    try:
        sock.sendall(data)
        report(*read_all(sock, 20.0))
    finally:
        sock.close()


def flood(args, count):
    """Opens count connections (at most 2000, within 30 s) while a keep-alive
    connection opened before them posts a message before and during them."""
    count = min(count, 2000)
    valid = cases(args["node"])["valid"]
    keep = connect(args)
    socks = []
    try:
        keep.sendall(valid)
        print("before", read_all(keep, 2.0)[0].split(b"\r\n", 1)[0].decode())
        deadline = time.monotonic() + 30
        while len(socks) < count and time.monotonic() < deadline:
            try:
                socks.append(socket.create_connection((args["host"], args["port"]), timeout=5))
            except OSError as err:
                print("connect failed:", err)
                break
        print("opened", len(socks))
        time.sleep(1.0)
        closed = 0
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed += 1
        print("closed by server", closed)
        keep.sendall(valid)
        print("during", read_all(keep, 2.0)[0].split(b"\r\n", 1)[0].decode())
    finally:
        for s in socks:
            s.close()
        keep.close()


def main():
    argv = sys.argv[1:]
    ca = None
    if argv[:1] == ["--ca"]:
        ca, argv = argv[1], argv[2:]
    host, port, node, case = argv[0], int(argv[1]), argv[2], argv[3]
    args = {"host": host, "port": port, "node": node, "ca": ca}
    if case == "slowloris":
        slowloris(args)
    elif case == "stall":
        stall(args, b"POST /?id=" + node.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    elif case == "idle":
        stall(args, cases(node)["valid"])
    elif case.startswith("flood"):
        flood(args, int(case[len("flood"):] or 2000))
    else:
        send_case(args, cases(node)[case])


if __name__ == "__main__":
    main()
