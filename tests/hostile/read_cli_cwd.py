"""Read the working directory of the command that runs the strategy (a project's ``.env``).

Attack (own): users run alphaloop from their project folder, which holds ``.env`` files with
API keys. The strategy reads ``.env`` there and lists the folder; content goes in the error.
Stopped by: Landlock (the CLI's working directory is not a read path).
"""

import os

PARAMETERS = {}


def generate_positions(data, **params):
    leaked, log = [], []
    try:
        with open("@@DOTENV@@") as f:
            leaked.append(".env=" + f.read(200))
    except Exception as exc:
        log.append(f".env: {type(exc).__name__}")
    try:
        leaked.append("ls=" + ",".join(sorted(os.listdir("@@CLI_CWD@@"))))
    except Exception as exc:
        log.append(f"ls: {type(exc).__name__}")
    if leaked:
        raise RuntimeError("read: " + " ".join(leaked))
    raise RuntimeError("working directory unreadable: " + "; ".join(log))
