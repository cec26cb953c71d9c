"""Tamper with the market-data file itself, which the strategy process may read.

Attack (own): open it for writing, truncate it, replace it by rename/``os.replace``/a symlink,
unlink it, ``chmod``/``chown``/``utime`` it, set an xattr, hard-link it into the private temp
and write through the link, ``mmap`` it shared and writable. Any success changes the prices of
every later run.
Stopped by: Landlock (read-only rule on the data file: no WRITE_FILE, TRUNCATE, REMOVE or
REFER) and DAC (uid 65534 owns nothing; ``chmod``/``utime``/``chown`` are not Landlock rights,
DAC refuses them). The test compares hash, mode and mtime before and after.
"""

import mmap
import os

PARAMETERS = {}

DATA = "@@DATA@@"


def _write(path, mode):
    with open(path, mode) as f:
        f.write(b"x")


def generate_positions(data, **params):
    here = os.getcwd()
    fake = os.path.join(here, "fake.csv")
    with open(fake, "w") as f:
        f.write("date,open,high,low,close,volume\n2020-01-01,1,1,1,1,1\n")

    def hardlink_then_write():
        link = os.path.join(here, "data-link")
        os.link(DATA, link)
        with open(link, "r+b") as f:
            f.write(b"x")

    def mmap_shared():
        with open(DATA, "rb") as f:
            m = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            m[0:1] = b"x"

    attempts = {
        "open r+": lambda: _write(DATA, "r+b"),
        "open a": lambda: _write(DATA, "ab"),
        "truncate": lambda: os.truncate(DATA, 10),
        "rename": lambda: os.rename(DATA, DATA + ".moved"),
        "replace": lambda: os.replace(fake, DATA),
        "unlink": lambda: os.unlink(DATA),
        "symlink": lambda: os.symlink(fake, DATA),
        "chmod": lambda: os.chmod(DATA, 0o666),
        "chown": lambda: os.chown(DATA, 65534, 65534),
        "utime": lambda: os.utime(DATA, (0, 0)),
        "setxattr": lambda: os.setxattr(DATA, "user.pwned", b"1"),
        "hardlink": hardlink_then_write,
        "mmap": mmap_shared,
    }
    escaped, log = [], []
    for name, fn in attempts.items():
        try:
            fn()
            escaped.append(name)
        except Exception as exc:
            log.append(f"{name}: {type(exc).__name__}")
    if escaped:
        raise RuntimeError("HOSTILE" + "-ESCAPED data file: " + " ".join(escaped))
    raise RuntimeError("data file untouchable: " + "; ".join(log))
