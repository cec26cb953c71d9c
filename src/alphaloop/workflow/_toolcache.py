"""The tool-check cache: verdicts of tool development kept in the home, so a second run on the
same strategies and data skips the checks it already made.

What a tool check does: the strategy is read and checked statically (the sandbox rules, its
``PARAMETERS``; `load_strategy`, done by every run before any check, never cached), then one
backtest with its declared defaults runs in a confined worker on the in-sample bars, with the
look-ahead test (its positions must not change when later bars are cut off). The verdict is
"ok", "look-ahead bias", or the failure.

What is cached, and under which key. Only verdicts that the same inputs always give again:
"ok" and "look-ahead bias" (both deterministic functions of the code, its parameters and the
bars). A failure is never cached: a timeout, the memory limit or a lost worker depends on the
machine, and an error is cheap to meet again. An entry is keyed by the sha256 of everything
the check's outcome depends on (`material`): the strategy's name and code hash, the task as the
worker would get it (parameters, ticker, timeframe, dates, data path, costs, look-ahead and
confinement flags), the fingerprint of the in-sample bars, the alphaloop version and a stamp of
its installed sources (name, size and modification time of each module, so an edited engine
re-checks even at the same version number). A changed strategy file, other data or another
alphaloop is another key: the check runs again.

Never trusted blindly. The file (``<home>/cache/tool_checks.json``) is read with suspicion: an
unreadable or malformed file is ignored as a whole, and an entry whose stored material is not
exactly this check's, whose verdict is not one that may be cached, or whose digest does not
match its content, is ignored. Each time something is ignored, the reason is logged (warning)
and kept in the file's ``ignored`` list when it is next written. An ignored entry is a miss,
never a pass: the check runs. The cache only ever skips work; a strategy it lets through was
checked, by an earlier run, on exactly these inputs.

Written without fsync (tmp file + rename): losing the cache costs a re-check, nothing else,
and a torn file is simply ignored. Concurrent runs merge their entries when they write (the
last writer wins a race; a lost entry is re-checked).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alphaloop import __version__
from alphaloop.execution import BacktestTask

__all__ = ["CACHE_FILE", "ToolCache", "build_stamp", "cacheable", "material"]

log = logging.getLogger(__name__)

CACHE_FILE = Path("cache") / "tool_checks.json"
"""The cache, relative to the home folder."""
FORMAT = 1
MAX_ENTRIES = 512
"""Most entries kept (the oldest go first)."""
MAX_IGNORED = 20
"""Most reasons for ignored content kept in the file."""
_CACHEABLE_PROBLEMS = (None, "look-ahead bias")

_STAMP: str | None = None


def build_stamp() -> str:
    """A short hash of the installed alphaloop sources (relative name, size, mtime of every
    module): an edited engine is another build, even at the same version number."""
    global _STAMP
    if _STAMP is None:
        root = Path(__file__).resolve().parents[1]
        digest = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            st = path.stat()
            digest.update(f"{path.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        _STAMP = digest.hexdigest()[:16]
    return _STAMP


def material(task: BacktestTask, data_fingerprint: str) -> dict[str, Any]:
    """Everything a tool check's verdict depends on, as plain JSON."""
    spec = task.model_dump(
        mode="json", exclude={"task_id", "experiment_id", "variant_id", "strategy_code"}
    )
    return {
        "alphaloop": __version__,
        "build": build_stamp(),
        "code_hash": hashlib.sha256(task.strategy_code.encode("utf-8")).hexdigest(),
        "data": data_fingerprint,
        "task": spec,
    }


def cacheable(verdict: Mapping[str, Any]) -> bool:
    """Whether a verdict is one the same inputs always give again ("ok", look-ahead)."""
    return _verdict_problem(verdict) is None


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _key(mat: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical(mat).encode()).hexdigest()


def _digest(mat: Any, verdict: Any) -> str:
    return hashlib.sha256(_canonical({"material": mat, "verdict": verdict}).encode()).hexdigest()


def _verdict_problem(verdict: Any) -> str | None:
    if not isinstance(verdict, Mapping) or set(verdict) != {"ok", "problem"}:
        return "not a verdict"
    ok, problem = verdict["ok"], verdict["problem"]
    if not isinstance(ok, bool) or problem not in _CACHEABLE_PROBLEMS or ok != (problem is None):
        return f"a verdict that is never cached ({_canonical(verdict)[:80]})"
    return None


def _read(path: Path) -> tuple[dict[str, Any], list[dict[str, str]], str | None]:
    """``(entries, ignored, reason)`` of the file; a reason when it cannot be used at all."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}, [], None
    except OSError as exc:
        return {}, [], f"unreadable ({exc.strerror or type(exc).__name__})"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return {}, [], f"not JSON ({str(exc)[:80]})"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}, [], "not a cache this alphaloop wrote (format)"
    entries, ignored = data.get("entries"), data.get("ignored")
    if not isinstance(entries, dict):
        return {}, [], "damaged (no entries)"
    kept = [i for i in ignored if isinstance(i, dict)] if isinstance(ignored, list) else []
    return entries, kept[-MAX_IGNORED:], None


class ToolCache:
    """The cache of one home: `get` a verdict, `put` new ones, `save` (see the module)."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / CACHE_FILE
        self._entries: dict[str, Any] = {}
        self._ignored: list[dict[str, str]] = []
        self.reasons: list[str] = []
        """Why content was ignored in this run (also logged and kept in the file)."""
        self._new: dict[str, Any] = {}
        self._dropped: set[str] = set()
        self._load()

    def _note(self, reason: str) -> None:
        log.warning("tool-check cache %s: %s; ignored, the checks run again", self.path, reason)
        self.reasons.append(reason)

    def _load(self) -> None:
        self._entries, self._ignored, reason = _read(self.path)
        if reason is not None:
            self._note(reason)

    def get(self, mat: Mapping[str, Any]) -> dict[str, Any] | None:
        """The cached verdict for exactly this material, or None (a miss, or an entry that
        cannot be trusted: ignored with its reason)."""
        mat = json.loads(_canonical(mat))
        key = _key(mat)
        entry = self._entries.get(key)
        if entry is None:
            return None
        name = mat.get("task", {}).get("strategy_name", "?")
        why = None
        if not isinstance(entry, dict):
            why = "not an object"
        elif entry.get("material") != mat:
            why = "stored for other inputs"
        elif (bad := _verdict_problem(entry.get("verdict"))) is not None:
            why = bad
        elif entry.get("digest") != _digest(entry["material"], entry["verdict"]):
            why = "its digest does not match its content"
        if why is not None:
            self._note(f"entry for {name} {why}")
            self._entries.pop(key, None)
            self._dropped.add(key)
            return None
        return {"ok": entry["verdict"]["ok"], "problem": entry["verdict"]["problem"]}

    def put(self, mat: Mapping[str, Any], verdict: Mapping[str, Any], at: str) -> None:
        """Remember a verdict (only a cacheable one) for `save`."""
        clean = {"ok": verdict["ok"], "problem": verdict["problem"]}
        if not cacheable(clean):
            return
        mat = json.loads(_canonical(mat))
        self._new[_key(mat)] = {"material": mat, "verdict": clean, "at": at,
                                "digest": _digest(mat, clean)}

    def save(self, at: str) -> None:
        """Write the new entries and the reasons for anything ignored (merged with what the
        file holds now). Nothing to say: no write. A failed write is logged, never raised:
        the cache only saves time."""
        if not self._new and not self.reasons:
            return
        now, _, _ = _read(self.path)  # what another run may have written meanwhile
        entries = {k: v for k, v in {**now, **self._entries}.items() if k not in self._dropped}
        entries.update(self._new)
        if len(entries) > MAX_ENTRIES:
            keep = sorted(entries, key=lambda k: str(entries[k].get("at", ""))
                          if isinstance(entries[k], dict) else "")[-MAX_ENTRIES:]
            entries = {k: entries[k] for k in keep}
        ignored = [*self._ignored, *({"at": at, "reason": r} for r in self.reasons)]
        text = json.dumps({"format": FORMAT, "alphaloop": __version__, "entries": entries,
                           "ignored": ignored[-MAX_IGNORED:]}, indent=1, sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tool_checks.",
                                       suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            log.warning("tool-check cache %s not written (%s); the next run checks again",
                        self.path, exc.strerror or type(exc).__name__)
            return
        self._entries, self._new, self.reasons = entries, {}, []
