"""Learn about files it cannot open: ``stat``, ``readlink``, ``listxattr``, ``inotify``.

Attack (own): Landlock controls opening, reading directories, writing, creating, removing,
linking and executing, not path lookups: ``stat`` tells size, owner and mtime of any file
(``/root/.ssh/id_rsa`` with CAP_DAC_READ_SEARCH), ``inotify_add_watch`` on a folder outside the
read set reports the names of files created there (an orchestrator's home, the canary folder).
No content. The findings go in the error message.
Not stopped (accepted metadata channel; reported by the suite, not asserted): names, sizes and
times of files outside the allowed paths.
"""

import ctypes
import os

PARAMETERS = {}


def generate_positions(data, **params):
    out = []
    for p in ("@@SSH_KEY@@", "@@CANARY_FILE@@", "/etc/shadow", "/root"):
        try:
            st = os.stat(p)
            out.append(f"stat {os.path.basename(p)}: size={st.st_size} uid={st.st_uid}")
        except Exception as exc:
            out.append(f"stat {os.path.basename(p)}: {type(exc).__name__}")
    try:
        out.append(f"xattr canary: {os.listxattr('@@CANARY_FILE@@')}")
    except Exception as exc:
        out.append(f"xattr: {type(exc).__name__}")
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(0)
    wd = libc.inotify_add_watch(fd, b"@@CANARY_DIR@@", 0x100 | 0x200)  # IN_CREATE|IN_DELETE
    out.append(f"inotify on canary folder: wd={wd} errno={ctypes.get_errno()}")
    raise RuntimeError("metadata: " + "; ".join(out))
