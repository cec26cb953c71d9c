"""Comparing workflow results across workflows of the same search."""

from __future__ import annotations

import re
from typing import Any

_EXPERIMENT = re.compile(r"exp_\d{8}_\d{6}_[0-9a-f]+_(\d+)")


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """A result without what differs between two workflows of the same search: the workflow
    id, and the workflow's stamp in experiment ids (``exp_<time>_<random>_003`` -> ``003``)."""
    out = dict(result)
    out.pop("workflow_id")
    out["lessons_learned"] = [lesson.split("] ", 1)[-1] for lesson in out["lessons_learned"]]
    looks = [dict(h) for h in out.get("holdout_looks_detail") or []]
    best = dict(out["holdout_significance"]) if out.get("holdout_significance") else None
    for look in [*looks, *([best] if best else [])]:
        look["variant"] = _EXPERIMENT.sub(r"\1", look["variant"])
    out["holdout_looks_detail"], out["holdout_significance"] = looks, best
    return out
