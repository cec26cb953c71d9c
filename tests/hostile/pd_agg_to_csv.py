"""Pandas string dispatch writes a file: ``data.agg('to_csv', 0, PATH)``.

Attack (issue, pandas-only style): ``DataFrame.agg`` with the *name* of a method calls it, so
``data.agg('to_csv', 0, PATH)`` is ``data.to_csv(PATH)`` without the word ``to_csv`` ever being
an attribute read. Targets: the canary folder, the CLI's working directory, the user's home,
the CLI's TMPDIR, /tmp, /var/tmp and /dev/shm.
Stopped by: Landlock (the only writable folder is the process's private temp).
"""

import os

PARAMETERS = {}

TARGETS = [
    "@@CANARY_DIR@@",
    "@@CLI_CWD@@",
    "@@USER_HOME@@",
    "@@CLI_TMP@@",
    "/tmp",
    "/var/tmp",
    "/dev/shm",
]


def generate_positions(data, **params):
    log, escaped = [], []
    for folder in TARGETS:
        path = os.path.join(folder, "hostile-pd_agg_to_csv.csv")
        try:
            data.agg("to_csv", 0, path)
        except Exception as exc:
            log.append(f"{folder}: {type(exc).__name__}")
        if os.path.exists(path):
            escaped.append(path)
    if escaped:
        raise RuntimeError("HOSTILE" + "-ESCAPED wrote " + " ".join(escaped))
    raise RuntimeError("to_csv blocked: " + "; ".join(log))
