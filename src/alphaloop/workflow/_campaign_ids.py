"""Where campaigns live in a home and how their ids look: what `alphaloop status` needs to
know of campaigns without importing the campaign runner (numpy, the execution layer)."""

from __future__ import annotations

from pathlib import Path

CAMPAIGNS_DIR = "campaigns"


def is_campaign_id(name: str) -> bool:
    return name.startswith("campaign_")


def list_campaigns(home: Path) -> list[str]:
    folder = home / CAMPAIGNS_DIR
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("campaign_*.json"))
