"""A format string decoded from a bytes literal walks ``__globals__`` into ``os.environ``.

Attack (issue): the old checks read only ``str`` literals, so the format string hides in a
bytes literal (``b"{0.__globals__[os].environ}"``, here also spelled with escapes) and becomes a
``str`` with ``.decode()``; ``format_map`` and ``%`` are tried as well. The environment goes
into the error message.
Stopped by: the scrubbed environment of the clean worker (no secret to find).
"""

import numpy as np

PARAMETERS = {}

FMT = b"{0.\x5f\x5fglobals\x5f\x5f[os].environ}"


def generate_positions(data, **params):
    text = FMT.decode().format(np.lib.npyio.DataSource.__init__)
    environ = np.lib.npyio.DataSource.__init__.__globals__["os"].environ
    mapped = "{PATH}|{HOME}".format(PATH=environ.get("PATH"), HOME=environ.get("HOME"))
    keys = " ".join(sorted(environ))
    raise RuntimeError(f"env keys: {keys} | {mapped} | {text}")
