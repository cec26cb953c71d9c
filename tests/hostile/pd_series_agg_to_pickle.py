"""Pandas string dispatch on a Series: ``data['close'].agg('to_pickle', 0, PATH)``.

Attack (issue, pandas-only style): ``Series.agg`` dispatches a method name too; ``to_pickle``
writes a pickle wherever it is told (the canary folder, the CLI's working directory, the
orchestrator's home, /tmp).
Stopped by: Landlock.
"""

import os

PARAMETERS = {}

TARGETS = ["@@CANARY_DIR@@", "@@CLI_CWD@@", "@@RUN_HOME@@", "@@CLI_TMP@@", "/tmp"]


def generate_positions(data, **params):
    log, escaped = [], []
    for folder in TARGETS:
        path = os.path.join(folder, "hostile-pd_series_agg_to_pickle.pkl")
        try:
            data["close"].agg("to_pickle", 0, path)
        except Exception as exc:
            log.append(f"{os.path.basename(folder)}: {type(exc).__name__}")
        if os.path.exists(path):
            escaped.append(path)
    if escaped:
        raise RuntimeError("HOSTILE" + "-ESCAPED wrote " + " ".join(escaped))
    raise RuntimeError("to_pickle blocked: " + "; ".join(log))
