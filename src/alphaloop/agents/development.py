"""Strategy development: turn research and feedback into the next batch of strategy variants.

The offline `OptunaDeveloper` is deterministic for a given seed and history:

- ``INITIAL`` / ``REFINE_RESEARCH``: the favoured families, best first, each with its declared
  defaults, then Optuna proposals around them until ``n_variants`` are filled.
- ``TUNE_PARAMETERS``: new parameters from Optuna's ask/tell interface — a seeded TPE sampler over
  the strategy's declared space, told the earlier in-sample results of that strategy (its
  ``gate_score``; the latest and the best, a bounded `Window`) before it is asked. One study
  per family and batch, one ask per proposal: never a point that breaks the strategy's
  ``CONSTRAINTS`` or was tried before (`_tuning`). No hand-written random search.
- ``REFINE_ALGORITHM``: the algorithm changes. The best strategy so far gets a refinement written
  into its source (a trend filter, a volatility filter, long-only, volatility targeting), and the
  next untried favoured family is brought in.
- ``FIX_BUG``: each failing variant is re-run with the fault addressed (an error or no trades:
  its declared defaults; a look-ahead bias: retired, never re-run).

Refinements are real code: the base strategy's source with a wrapper appended that post-processes
its positions using data up to each bar only, so the result passes the same sandbox and
look-ahead checks as any other strategy.

The search fits the data's bar size: parameters declared ``"unit": "days"`` (the library's
lookbacks, the refinements' windows) are declared for daily bars, and every strategy the
developer proposes has them scaled to bars of the workflow's data (``DevelopmentInput.
bars_per_year`` / 252 bars a day) and capped at a third of its in-sample bars
(`alphaloop.backtest.strategy.scale_lookbacks`); on daily data nothing changes but that cap.
The scaled space is written into the proposed code's ``PARAMETERS`` and noted in its last
line and in each proposal's description.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from alphaloop.agents._refine import (
    FIXES,
    REFINEMENTS,
    VOL_TARGET_DAYS,
    _scaling_note,
    clashes,
    fit_to_bars,
    refine,
)
from alphaloop.agents._tuning import Asking, Window, propose_batch
from alphaloop.agents._tuning import key as point_key
from alphaloop.backtest.strategy import Strategy

__all__ = [
    "FIXES",
    "REFINEMENTS",
    "VOL_TARGET_DAYS",
    "Asking",
    "DevelopmentInput",
    "OptunaDeveloper",
    "PastResult",
    "StrategyDeveloper",
    "VariantProposal",
    "Window",
    "clashes",
    "fit_to_bars",
    "refine",
]

Action = Literal["INITIAL", "TUNE_PARAMETERS", "FIX_BUG", "REFINE_ALGORITHM", "REFINE_RESEARCH"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PastResult(_Frozen):
    """One earlier in-sample backtest, as the developer may see it (never holdout numbers)."""

    variant_id: str
    strategy_name: str
    strategy_code: str
    parameters: dict[str, Any]
    gate_score: float | None = None
    error: str | None = None
    num_trades: int | None = None
    lookahead: bool = False


class DevelopmentInput(_Frozen):
    """What the developer is asked: which action, from which families, knowing what history."""

    action: Action
    families: list[str] = Field(description="Favoured strategy families, best first.")
    history: list[PastResult] = Field(default_factory=list)
    failing: list[PastResult] = Field(default_factory=list, description="For FIX_BUG.")
    n_variants: int = 8
    long_only: bool = False
    low_drawdown: bool = False
    seed: int = 0
    bars_per_year: float = Field(
        default=252.0,
        gt=0,
        allow_inf_nan=False,
        description="Bars per year of the in-sample data (`alphaloop.data.bars_per_year`): "
        "lookbacks declared in days are scaled by bars_per_year / 252 bars a day.",
    )
    in_sample_bars: int | None = Field(
        default=None,
        ge=1,
        description="Bars the search tunes on: no lookback is proposed above a third of them.",
    )


class VariantProposal(_Frozen):
    """A strategy variant to backtest."""

    strategy_name: str
    strategy_code: str
    parameters: dict[str, Any]
    description: str = ""
    parent_variant_id: str | None = None
    parameter_changes: dict[str, Any] = Field(default_factory=dict)


class StrategyDeveloper(Protocol):
    """Proposes the next variants; offline (`OptunaDeveloper`) or LLM-backed providers."""

    def available(self) -> list[str]:
        """Names of the base strategies (library and user) this developer can build on."""
        ...

    def default_proposal(self, name: str) -> VariantProposal:
        """`name` with its declared default parameters."""
        ...

    def propose(self, inp: DevelopmentInput) -> list[VariantProposal]:
        """The next variants for `inp.action` (at most `inp.n_variants`)."""
        ...


def _seed(seed: int, name: str) -> int:
    return int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:8], 16)


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    return {k: {"from": old.get(k), "to": v} for k, v in new.items() if old.get(k) != v}


class OptunaDeveloper:
    """The offline developer: Optuna TPE for tuning, source refinements for redesigns."""

    def __init__(self, strategies: Mapping[str, Strategy], asking: Asking = Asking()) -> None:
        self._strategies = dict(strategies)
        self.asking = asking
        """How TPE is asked (`_tuning.Asking`)."""
        self.asks = 0
        """`study.ask` calls so far (a benchmark reads it), and those told back pruned:"""
        self.pruned = 0
        self._refined: dict[tuple[str, float], Strategy] = {}
        self._fitted: dict[tuple[str, float, int | None], Strategy] = {}

    def strategy(
        self, name: str, bars_per_year: float = 252.0, in_sample_bars: int | None = None
    ) -> Strategy:
        """The named strategy: a library/user one, or ``base+refinement`` built on demand,
        fitted to data with ``bars_per_year`` bars a year and ``in_sample_bars`` to tune on
        (`fit_to_bars`; with the defaults, as declared)."""
        key = (name, bars_per_year, in_sample_bars)
        if key not in self._fitted:
            self._fitted[key] = fit_to_bars(
                self._unfitted(name, bars_per_year), bars_per_year, in_sample_bars
            )
        return self._fitted[key]

    def _unfitted(self, name: str, bars_per_year: float) -> Strategy:
        if name in self._strategies:
            return self._strategies[name]
        if (name, bars_per_year) not in self._refined:
            base, _, refinement = name.rpartition("+")
            if not base:
                raise KeyError(f"unknown strategy {name!r}: neither a base strategy of this "
                               "developer nor base+refinement")
            self._refined[name, bars_per_year] = refine(
                self._unfitted(base, bars_per_year), refinement, bars_per_year / 252.0
            )
        return self._refined[name, bars_per_year]

    def _for(self, name: str, inp: DevelopmentInput) -> Strategy:
        """`name` fitted to the data `inp` describes."""
        return self.strategy(name, inp.bars_per_year, inp.in_sample_bars)

    def available(self) -> list[str]:
        """Names of the base strategies (library and user) this developer can build on."""
        return sorted(n for n in self._strategies if "+" not in n)

    def default_proposal(self, name: str) -> VariantProposal:
        """`name` with its declared default parameters."""
        return self._proposal(name, self.strategy(name).defaults(), "declared defaults")

    def propose(self, inp: DevelopmentInput) -> list[VariantProposal]:
        """The next `inp.n_variants` (at most) variants for `inp.action`."""
        if inp.action == "FIX_BUG":
            return self._fix(inp)
        names = self._names_for(inp)
        out: list[VariantProposal] = []
        if inp.action in ("INITIAL", "REFINE_RESEARCH", "REFINE_ALGORITHM"):
            tried = {(r.strategy_name, repr(sorted(r.parameters.items()))) for r in inp.history}
            for name in names:
                defaults = self._for(name, inp).defaults()
                if (name, repr(sorted(defaults.items()))) not in tried:
                    out.append(self._proposal(name, defaults, "declared defaults", inp))
        # the rest from TPE, the families taking turns: one study per family for its share
        order = [names[i % len(names)] for i in range(max(0, inp.n_variants - len(out)))]
        got = {name: self._tune(name, inp, order.count(name), out)
               for name in dict.fromkeys(order)}
        # a family with no new point left (no parameters, a small space all tried): the
        # others fill its share, so a batch comes short only when every space is spent
        short = sum(order.count(n) - len(got[n]) for n in got)
        full = [n for n in got if len(got[n]) == order.count(n)]
        more = [full[i % len(full)] for i in range(short)] if full else []
        for name in dict.fromkeys(more):
            got[name] += self._tune(name, inp, more.count(name), [*out, *got[name]])
        batches = {name: iter(points) for name, points in got.items()}
        for name in order + more:
            asked = next(batches[name], None)
            if asked is not None:
                out.append(asked)
        return out[: inp.n_variants]

    # -- helpers -------------------------------------------------------------------------------
    def _names_for(self, inp: DevelopmentInput) -> list[str]:
        families = [f for f in inp.families if f in self._strategies] or ["sma_crossover"]
        if inp.long_only:
            families = [f"{f}+long_only" if "long_only" not in f else f for f in families]
        if inp.action in ("INITIAL", "REFINE_RESEARCH"):
            return families[:4]
        ranked = self._ranked(inp.history)
        if inp.action == "TUNE_PARAMETERS":
            return ranked[:2] or families[:2]
        # REFINE_ALGORITHM: refine the best strategy, and bring in the next untried family.
        best = ranked[0] if ranked else families[0]
        tried = {r.strategy_name for r in inp.history}
        order = ["vol_target", "trend_filter", "volatility_filter"]
        if inp.low_drawdown:
            order = ["vol_target", "volatility_filter", "trend_filter"]
        refined = [
            f"{best}+{r}"
            for r in order
            if f"{best}+{r}" not in tried
            and r not in best
            and not clashes(self._unfitted(best, inp.bars_per_year), r)
        ]
        fresh = [f for f in families if f not in tried]
        return (refined[:1] + fresh[:1] + refined[1:2]) or [best]

    def _ranked(self, history: Sequence[PastResult]) -> list[str]:
        """Names in the history best gate score first, those this developer can build only
        (a strategy a model wrote that never joined, or a user file since removed, is not)."""
        best: dict[str, float] = {}
        for r in history:
            if (r.gate_score is not None and not r.lookahead
                    and r.strategy_name.split("+")[0] in self._strategies):
                best[r.strategy_name] = max(best.get(r.strategy_name, -1e9), r.gate_score)
        return sorted(best, key=lambda n: (-best[n], n))

    def _proposal(
        self, name: str, params: dict[str, Any], why: str, inp: DevelopmentInput | None = None
    ) -> VariantProposal:
        strat = self.strategy(name) if inp is None else self._for(name, inp)
        return VariantProposal(
            strategy_name=name,
            strategy_code=strat.source,
            parameters=params,
            description=f"{strat.summary} ({why}{self._fit_note(name, inp)})",
        )

    def _fit_note(self, name: str, inp: DevelopmentInput | None) -> str:
        """``"; lookbacks in days x6.19 (...)"`` when `name`'s space was fitted to the data."""
        if inp is None or self._for(name, inp) is self._unfitted(name, inp.bars_per_year):
            return ""
        cap = None if inp.in_sample_bars is None else max(1, inp.in_sample_bars // 3)
        return "; " + _scaling_note(inp.bars_per_year, cap)

    def _tune(
        self, name: str, inp: DevelopmentInput, k: int, already: list[VariantProposal]
    ) -> list[VariantProposal]:
        """``k`` (at most) TPE proposals for `name`, none tried before nor in ``already``
        (`_tuning.propose_batch`: one study told the family's results, asked once a point)."""
        strat = self._for(name, inp)
        mine = [r for r in inp.history if r.strategy_name == name]
        told = [(r.parameters, r.gate_score) for r in mine
                if r.gate_score is not None and not r.lookahead]
        taken = {point_key(r.parameters) for r in mine}
        taken |= {point_key(p.parameters) for p in already if p.strategy_name == name}
        batch = propose_batch(strat, told, taken, k, _seed(inp.seed, f"{name}:{len(inp.history)}"),
                              self.asking)
        self.asks += batch.asks
        self.pruned += batch.pruned
        best = max(told, key=lambda t: t[1])[0] if told else strat.defaults()
        heard = f"{batch.told}" if batch.told == len(told) else f"{batch.told} of {len(told)}"
        return [
            VariantProposal(
                strategy_name=name,
                strategy_code=strat.source,
                parameters=params,
                description=f"{strat.summary} (TPE proposal, told {heard} results"
                f"{self._fit_note(name, inp)})",
                parameter_changes=_changes(best, params),
            )
            for params in batch.points
        ]

    def _fix(self, inp: DevelopmentInput) -> list[VariantProposal]:
        out = []
        for r in inp.failing[: inp.n_variants]:
            if r.lookahead:
                continue  # retired: a look-ahead strategy can never pass
            defaults = (
                self._for(r.strategy_name, inp).defaults()
                if (r.strategy_name in self._strategies or "+" in r.strategy_name)
                else r.parameters
            )
            if defaults == r.parameters:
                continue  # nothing left to fix by parameters: retired
            out.append(
                VariantProposal(
                    strategy_name=r.strategy_name,
                    strategy_code=r.strategy_code,
                    parameters=defaults,
                    description=f"fix of {r.variant_id}: back to declared defaults "
                    f"({r.error or 'no trades'})",
                    parent_variant_id=r.variant_id,
                    parameter_changes=_changes(r.parameters, defaults),
                )
            )
        return out
