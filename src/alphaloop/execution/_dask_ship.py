"""The bars a Dask run needs, shipped to the workers once per fingerprint.

Tasks on a user's data (``data_path``) name it by path, which a worker on another machine (or
in another folder) cannot read. The orchestrator loads the bars once per run (``data.load``,
cached per process), fingerprints them (``data.fingerprint``) and scatters the frame to every
worker once per fingerprint (``Client.scatter({"alphaloop-bars-<fp>": frame},
broadcast=True)``); the future is kept while the backend lives, so a later run on the same bars
ships nothing, and a worker that joins later fetches them from a peer when its first batch
needs them. Each batch carries the futures of the bars it needs (Dask hands the worker its
local copy) and, per item, the fingerprint; `_dask_batches` does the rest on the worker. The
embedded sample is not shipped: the workers have the package.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from alphaloop.execution._task import Claim

logger = logging.getLogger(__name__)

_NULL_PATH = ',"data_path":null,"adjust":'  # the fast test for "no data to ship"


class Shipper:
    """The bars behind the claims, loaded here once per run and scattered to every worker
    once per fingerprint (kept across runs while the backend lives)."""

    def __init__(self, client: Any, scattered: dict[str, Any]) -> None:
        self.client = client
        self.scattered = scattered  # fingerprint -> future of the frame on the workers
        self.sources: dict[tuple[Any, ...], tuple[str, Any] | str] = {}
        self.tails: dict[str, tuple[str, Any] | str] = {}

    def prepare(
        self, claims: list[Claim]
    ) -> tuple[list[tuple[str, int, str, str | None]], dict[str, Any], list[tuple[Claim, str]]]:
        """``(items, {fingerprint: future}, [(claim, error)])`` for one batch."""
        items: list[tuple[str, int, str, str | None]] = []
        bars: dict[str, Any] = {}
        bad: list[tuple[Claim, str]] = []
        for c in claims:
            if _NULL_PATH in c.payload:
                items.append((c.task_id, c.attempt, c.payload, None))
                continue
            # the fields from "ticker" on (no nested objects there, so the last "ticker" key
            # is the task's) name the data: parsed once per distinct tail, not per claim
            tail = c.payload[c.payload.rfind('"ticker":') :]
            got = self.tails.get(tail)
            if got is None:
                t = json.loads(c.payload)
                if t.get("data_path") is None:
                    items.append((c.task_id, c.attempt, c.payload, None))
                    continue
                src = (str(t["ticker"]).upper(), t["timeframe"], os.path.abspath(t["data_path"]))
                got = self._source((*src, bool(t.get("adjust", True))))
                if len(self.tails) < 4096:
                    self.tails[tail] = got
            if isinstance(got, str):
                bad.append((c, got))
                continue
            fp, fut = got
            bars[fp] = fut
            items.append((c.task_id, c.attempt, c.payload, fp))
        return items, bars, bad

    def _source(self, key: tuple[Any, ...]) -> tuple[str, Any] | str:
        got = self.sources.get(key)
        if isinstance(got, tuple) and got[1].status != "finished":  # lost with its workers
            got = None
        if got is None:
            from alphaloop import data as market
            from alphaloop.errors import AlphaloopError

            ticker, timeframe, path, adjust = key
            try:
                frame = market.load(ticker, timeframe, path, adjust=adjust)
            except AlphaloopError as exc:
                got = self.sources[key] = f"{type(exc).__name__}: {exc}"
                return got
            fp = market.fingerprint(frame)
            fut = self.scattered.get(fp)
            if fut is None or fut.status != "finished":
                name = f"alphaloop-bars-{fp}"
                fut = self.client.scatter({name: frame}, broadcast=True, hash=False)[name]
                self.scattered[fp] = fut
                logger.info(
                    "shipped %s %s (%d bars, %s) to the workers", ticker, timeframe, len(frame), fp
                )
            got = self.sources[key] = (fp, fut)
        return got
