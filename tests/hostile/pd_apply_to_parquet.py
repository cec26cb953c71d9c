"""Pandas string dispatch through ``apply``: ``data.apply('to_parquet', args=(PATH,))``.

Attack (issue, pandas-only style): ``DataFrame.apply`` with a method name calls
``data.to_parquet(PATH)`` (pandas raises only *after* the file is written).
Stopped by: Landlock.
"""

import os

PARAMETERS = {}

TARGETS = ["@@CANARY_DIR@@", "@@CLI_CWD@@", "@@USER_HOME@@", "/tmp", "/dev/shm"]


def generate_positions(data, **params):
    log, escaped = [], []
    for folder in TARGETS:
        path = os.path.join(folder, "hostile-pd_apply_to_parquet.parquet")
        try:
            data.apply("to_parquet", args=(path,))
        except Exception as exc:
            log.append(f"{os.path.basename(folder)}: {type(exc).__name__}")
        if os.path.exists(path):
            escaped.append(path)
    if escaped:
        raise RuntimeError("HOSTILE" + "-ESCAPED wrote " + " ".join(escaped))
    raise RuntimeError("to_parquet blocked: " + "; ".join(log))
