"""Read the orchestrator's home: ``queue.db``, ``tracker.db``, ``state.json``, settings.

Attack (own): the home folder holds every task's code and result; a strategy that can read it
can copy other strategies, and one that could write it could forge results. It opens the
SQLite files (read-only and read-write), reads the JSON files, and puts what it found in the
error.
Stopped by: Landlock (the home is neither readable nor writable).
"""

import glob
import os
import sqlite3

PARAMETERS = {}

HOME = "@@RUN_HOME@@"


def generate_positions(data, **params):
    found, log, escaped = [], [], []
    files = sorted(glob.glob(os.path.join(HOME, "**", "*"), recursive=True))
    if files:
        found.append("files=" + ",".join(os.path.basename(f) for f in files[:15]))
    for db in [f for f in files if f.endswith(".db")][:4]:
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            rows = con.execute("SELECT name FROM sqlite_master").fetchall()
            found.append(f"{os.path.basename(db)} tables={rows[:5]}")
            con.close()
        except Exception as exc:
            log.append(f"{os.path.basename(db)}: {type(exc).__name__}")
        try:
            con = sqlite3.connect(db)
            con.execute("CREATE TABLE hostile(x)")
            con.commit()
            escaped.append(db)
        except Exception as exc:
            log.append(f"write {os.path.basename(db)}: {type(exc).__name__}")
    for js in [f for f in files if f.endswith(".json")][:4]:
        try:
            with open(js) as f:
                found.append(f"{os.path.basename(js)}={f.read(80)}")
        except Exception as exc:
            log.append(f"{os.path.basename(js)}: {type(exc).__name__}")
    try:
        found.append("ls=" + ",".join(os.listdir(HOME)))
    except Exception as exc:
        log.append(f"ls: {type(exc).__name__}")
    if escaped:
        raise RuntimeError("HOSTILE" + "-ESCAPED wrote " + " ".join(escaped))
    raise RuntimeError("home: " + " ".join(found) + " | " + "; ".join(log))
