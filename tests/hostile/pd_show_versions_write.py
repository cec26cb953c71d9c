"""``pd.show_versions(as_json=PATH)`` writes a JSON file wherever it is told.

Attack (issue, pandas-only style): a pandas function with a file-writing argument; targets
outside the private temp (canary folder, CLI's working directory, home, /tmp).
Stopped by: Landlock.
"""

import os

import pandas as pd

PARAMETERS = {}

TARGETS = ["@@CANARY_DIR@@", "@@CLI_CWD@@", "@@USER_HOME@@", "/tmp"]


def generate_positions(data, **params):
    log, escaped = [], []
    for folder in TARGETS:
        path = os.path.join(folder, "hostile-pd_show_versions_write.json")
        try:
            pd.show_versions(as_json=path)
        except Exception as exc:
            log.append(f"{os.path.basename(folder)}: {type(exc).__name__}")
        if os.path.exists(path):
            escaped.append(path)
    if escaped:
        raise RuntimeError("HOSTILE" + "-ESCAPED wrote " + " ".join(escaped))
    raise RuntimeError("show_versions blocked: " + "; ".join(log))
