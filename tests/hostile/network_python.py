"""Reach the test's loopback listeners with Python's networking: TCP, UDP, UNIX, HTTP.

Attack (own): ``socket.create_connection`` to 127.0.0.1, a UDP datagram, an AF_UNIX stream
connection to a path socket and to an abstract one, ``socketpair``, ``urllib.request``,
``http.client``, ``asyncio.open_connection``, ``multiprocessing.connection.Client``. Any
connection is an exfiltration channel.
Stopped by: seccomp (``socket``/``socketpair``/``connect`` answer EPERM, whatever the family).
"""

import asyncio
import http.client
import socket
import urllib.request
from multiprocessing.connection import Client

PARAMETERS = {}

PORT = int("@@TCP_PORT@@")
UDP = int("@@UDP_PORT@@")


def generate_positions(data, **params):
    attempts = {
        "tcp": lambda: socket.create_connection(("127.0.0.1", PORT), timeout=2).close(),
        "udp": lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(
            b"x", ("127.0.0.1", UDP)
        ),
        "unix": lambda: socket.socket(socket.AF_UNIX).connect("@@UNIX_SOCK@@"),
        "abstract": lambda: socket.socket(socket.AF_UNIX).connect("\0@@ABSTRACT_SOCK@@"),
        "socketpair": lambda: socket.socketpair(),
        "urllib": lambda: urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=2),
        "http.client": lambda: http.client.HTTPConnection("127.0.0.1", PORT, timeout=2).request(
            "GET", "/"
        ),
        "asyncio": lambda: asyncio.run(asyncio.open_connection("127.0.0.1", PORT)),
        "mp.Client": lambda: Client(("127.0.0.1", PORT)),
    }
    escaped, log = [], []
    for name, fn in attempts.items():
        try:
            fn()
            escaped.append(name)
        except Exception as exc:
            log.append(f"{name}: {type(exc).__name__}")
    if escaped:
        raise RuntimeError("HOSTILE" + "-ESCAPED connected: " + " ".join(escaped))
    raise RuntimeError("no socket: " + "; ".join(log))
