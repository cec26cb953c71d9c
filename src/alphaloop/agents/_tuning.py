"""TPE proposals for one strategy family: one study per batch, bounded history, constraints.

`propose_batch` asks Optuna's TPE sampler for ``k`` new points of one strategy's space:

- **One study per batch.** The study is told the family's earlier in-sample results once,
  then asked ``k`` times; the points asked stay RUNNING, so the sampler's constant liar keeps
  the next ask away from them (Optuna's own batch-ask support).
- **No wasted asks.** The sampler never picks a candidate that violates the strategy's
  ``CONSTRAINTS`` or repeats a point already tried or proposed: such candidates get no chance
  in the acquisition (`_GuidedTPE`). Before TPE has its ``N_STARTUP`` results, the points are
  drawn uniformly from the constrained space, untried, and handed to the study to ask. A point
  that is still rejected (every candidate TPE drew was taken) is told back as PRUNED (TPE ranks
  pruned trials below every result), the next ask takes an untried uniform draw, and the batch
  stops after `spare_asks` rejections: the space may hold no new point.
- **History in bounds.** The study holds at most `Window.recent` latest results and the
  `Window.best` best ones, so one ask costs the same after 40 results and after 4,000.
- **Cheap asks** (`Asking`): integer ranges are sampled as continuous ones and rounded back
  to their grid, and one TPE fit serves up to ``per_fit`` asks of a big batch.

`_GuidedTPE` hooks into Optuna's TPE at ``_compute_acquisition_func`` (a private method,
there since Optuna 3.x): were it renamed, the hook would go unused, and constraints and
repeats would still be kept out, by rejection (the point is told back pruned), at the cost
of more asks — ``tests/test_constraints.py`` counts them.

Deterministic: the same space, results, taken points and seed give the same proposals.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from alphaloop.backtest._constraints import Constraint
from alphaloop.backtest.strategy import Choice, FloatRange, IntRange, Strategy
from alphaloop.errors import StrategyError

__all__ = [
    "N_STARTUP", "Asking", "Batch", "Window", "key", "nearest_feasible", "propose_batch",
    "spare_asks",
]

N_STARTUP = 5
"""Results TPE needs before it models the space; before that, uniform draws."""

_UNIFORM_DRAWS = 64
"""Uniform candidates drawn per startup point (the first feasible, untried one is taken)."""

CANDIDATES = 24
"""Candidates TPE draws from its good-points model per proposal (Optuna's default)."""


@dataclass(frozen=True)
class Window:
    """Which of a family's results the study is told: the latest ``recent`` and the ``best``
    best (``None``: all of them, the cost of an ask then grows with the history)."""

    recent: int | None = 96
    best: int = 32


@dataclass(frozen=True)
class Asking:
    """How `propose_batch` asks TPE (the defaults are what ``benchmarks/bench_propose.py``
    measured best; the others are there to compare with):

    - ``window``: which results the study is told;
    - ``relax``: integer ranges sampled as continuous ones, rounded back (`_relaxed`): TPE's
      density of a continuous parameter costs O(results) an ask, of a discrete one
      O(results x candidates) in pure Python;
    - ``per_fit``: at most so many proposals share one TPE fit (`_GuidedTPE`);
    - ``guide``: candidates breaking a constraint or already taken get no chance in the
      acquisition; without it they are asked, rejected and told back pruned."""

    window: Window = Window()
    relax: bool = True
    per_fit: int = 8
    guide: bool = True


@dataclass(frozen=True)
class Batch:
    """What one `propose_batch` call gave: the new points, and how many asks it took and
    how many of them were told back as pruned."""

    points: list[dict[str, Any]]
    told: int
    asks: int
    pruned: int


def key(params: Mapping[str, Any]) -> str:
    """A point's identity (as the developer compares points: names and values, sorted)."""
    return repr(sorted(params.items()))


def spare_asks(k: int) -> int:
    """Rejected asks a batch of ``k`` may spend before it stops."""
    return max(2, k // 4)


def distribution(spec: IntRange | FloatRange | Choice) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution of a declared parameter space."""
    if isinstance(spec, IntRange):
        return optuna.distributions.IntDistribution(spec.low, _top(spec), step=spec.step or 1)
    if isinstance(spec, FloatRange):
        return optuna.distributions.FloatDistribution(
            spec.low, spec.high, log=spec.log, step=spec.step
        )
    return optuna.distributions.CategoricalDistribution(list(spec.choices))


class _GuidedTPE(optuna.samplers.TPESampler):
    """TPE whose acquisition gives no chance to candidates ``judge`` refuses (those violating
    a constraint or already taken): of the candidates it draws from the good-points model, it
    keeps the best acceptable one.

    With ``per_fit`` > 1 (`Asking.per_fit`, at most a quarter of the batch, so batches of up
    to 7 are plain TPE) one model serves that many asks (Optuna's TPE fits its two densities
    again for every ask): it draws ``per_fit`` groups of `CANDIDATES`, the best acceptable
    point of each group (distinct) is one proposal, the first is returned and the others wait
    for the next asks. The points asked stay RUNNING, so the next fit (constant liar) moves
    away from them."""

    def __init__(self,
                 judge: Callable[[dict[str, np.ndarray]], tuple[np.ndarray, list[str]]] | None,
                 per_fit: int, **kw: Any):
        super().__init__(n_ei_candidates=CANDIDATES * per_fit, **kw)
        self._judge = judge
        self._per_fit = per_fit
        self._space: dict[str, optuna.distributions.BaseDistribution] = {}
        self._waiting: list[dict[str, Any]] = []

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]
                        ) -> dict[str, Any]:
        if self._waiting and search_space == self._space:
            return self._waiting.pop(0)
        self._waiting = []
        return super().sample_relative(study, trial, search_space)

    def _sample(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        self._space = search_space
        return super()._sample(study, trial, search_space)

    def _compute_acquisition_func(self, samples: Any, mpe_below: Any, mpe_above: Any) -> Any:
        acq = np.asarray(super()._compute_acquisition_func(samples, mpe_below, mpe_above))
        if self._judge is None or set(self._space) != set(samples):
            return acq
        external = {
            name: np.asarray([dist.to_external_repr(v) for v in samples[name]], dtype=object)
            for name, dist in self._space.items()
        }
        bad, keys = self._judge(external)
        picks: list[int] = []
        chosen: set[str] = set()
        for g in range(0, len(acq), CANDIDATES):
            group = range(g, min(g + CANDIDATES, len(acq)))
            for i in sorted(group, key=lambda i: (-acq[i], i)):
                if not bad[i] and keys[i] not in chosen:
                    picks.append(i)
                    chosen.add(keys[i])
                    break
        if not picks:
            return acq  # nothing acceptable: the best one is asked, rejected, told pruned
        self._waiting = [{n: external[n][i] for n in self._space} for i in picks[1:]]
        out = np.full(len(acq), -np.inf)
        out[picks[0]] = 0.0
        return out


def _uniform(
    dists: Mapping[str, optuna.distributions.BaseDistribution], rng: np.random.Generator, n: int
) -> dict[str, np.ndarray]:
    """``n`` points drawn uniformly from ``dists`` (object arrays of external values)."""
    out: dict[str, np.ndarray] = {}
    for name, d in dists.items():
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            idx = rng.integers(0, len(d.choices), n)
            out[name] = np.asarray([d.choices[i] for i in idx], dtype=object)
        elif isinstance(d, optuna.distributions.IntDistribution):
            steps = (d.high - d.low) // d.step
            out[name] = np.asarray(
                [int(d.low + d.step * s) for s in rng.integers(0, steps + 1, n)], dtype=object
            )
        else:
            assert isinstance(d, optuna.distributions.FloatDistribution)
            if d.step is not None:
                steps = math.floor((d.high - d.low) / d.step + 1e-9)
                raw = d.low + d.step * rng.integers(0, steps + 1, n)
            elif d.log:
                raw = np.exp(rng.uniform(math.log(d.low), math.log(d.high), n))
            else:
                raw = rng.uniform(d.low, d.high, n)
            out[name] = np.asarray([float(v) for v in raw], dtype=object)
    return out


def nearest_feasible(
    specs: Mapping[str, IntRange | FloatRange | Choice],
    constraints: Sequence[Constraint],
    strategy: str,
) -> dict[str, Any]:
    """New defaults for the parameters whose declared defaults violate ``constraints`` (none
    when they meet them): of 4,096 seeded uniform draws meeting them, the one nearest the
    defaults (range-normalised L1). `StrategyError` if no draw meets them (a space scaled
    down to a few bars, where ``fast`` and ``slow`` can only be equal)."""
    defaults = {n: s.default for n, s in specs.items()}
    if all(c.holds(defaults) for c in constraints):
        return {}
    dists = {n: distribution(s) for n, s in specs.items()}
    draws = _uniform(dists, np.random.default_rng(0), 4096)
    ok = np.ones(4096, dtype=bool)
    for c in constraints:
        ok &= c.mask({n: draws[n].astype(float) for n in c.names})
    if not ok.any():
        raise StrategyError(
            f"strategy {strategy!r}: no point of its parameter space "
            f"({', '.join(f'{n} {s.describe()}' for n, s in specs.items())}) meets its "
            f"CONSTRAINTS {[c.text for c in constraints]}"
        )
    distance = np.zeros(4096)
    for n, s in specs.items():
        if isinstance(s, Choice):
            distance += np.asarray([v != s.default for v in draws[n]], dtype=float)
        else:
            width = max(float(s.high - s.low), 1e-12)
            distance += np.abs(draws[n].astype(float) - s.default) / width
    best = int(np.flatnonzero(ok)[np.argmin(distance[ok])])
    return {n: draws[n][best] for n in specs if draws[n][best] != defaults[n]}


def _window(told: Sequence[tuple[dict[str, Any], float]], window: Window) -> list[int]:
    """Indices (in history order) of the results the study is told."""
    if window.recent is None or len(told) <= window.recent + window.best:
        return list(range(len(told)))
    keep = set(range(len(told) - window.recent, len(told)))
    ranked = sorted(range(len(told)), key=lambda i: (-told[i][1], i))
    keep.update(ranked[: window.best])
    return sorted(keep)


def _relaxed(spec: IntRange | FloatRange | Choice) -> optuna.distributions.BaseDistribution:
    """What the study samples for ``spec``: an integer range as a float range half a step
    wider each side (rounded back to the grid by `_decode`), the rest as declared."""
    if isinstance(spec, IntRange) and _top(spec) > spec.low:
        half = (spec.step or 1) / 2
        return optuna.distributions.FloatDistribution(spec.low - half, _top(spec) + half)
    return distribution(spec)


def _top(spec: IntRange) -> int:
    """The highest value of an integer range on its grid (``high`` may lie off it)."""
    step = spec.step or 1
    return spec.low + (spec.high - spec.low) // step * step


def _decode(spec: IntRange | FloatRange | Choice, value: Any) -> Any:
    """A value the study sampled, as a value of the declared space."""
    if isinstance(spec, IntRange) and not isinstance(value, int):
        step = spec.step or 1
        return min(_top(spec), max(spec.low, spec.low + math.floor((value - spec.low) / step
                                                                   + 0.5) * step))
    return value


def _decode_all(spec: IntRange | FloatRange | Choice, values: np.ndarray) -> np.ndarray:
    """`_decode` of many values at once (an object array of Python values)."""
    out = np.empty(len(values), dtype=object)
    if isinstance(spec, IntRange) and len(values):
        step = spec.step or 1
        raw = np.asarray(values, dtype=float)
        grid = spec.low + np.floor((raw - spec.low) / step + 0.5) * step
        out[:] = np.clip(grid, spec.low, _top(spec)).astype(np.int64).tolist()
    else:
        out[:] = list(values)
    return out


def propose_batch(
    strategy: Strategy,
    told: Iterable[tuple[dict[str, Any], float]],
    taken: set[str],
    k: int,
    seed: int,
    asking: Asking = Asking(),
) -> Batch:
    """Up to ``k`` new points of ``strategy``'s space, none violating its constraints nor in
    ``taken`` (keys of points tried or already proposed; the new ones are added to it).
    ``told``: the family's earlier (params, gate score) results, oldest first."""
    window, relax = asking.window, asking.relax
    specs = strategy.parameters
    declared = {n: distribution(s) for n, s in specs.items()}
    dists = {n: _relaxed(s) for n, s in specs.items()} if relax else declared
    constraints = strategy.constraints
    fixed = {n: d.choices[0] if isinstance(d, optuna.distributions.CategoricalDistribution)
             else d.low for n, d in declared.items() if d.single()}

    def decode(params: Mapping[str, Any]) -> dict[str, Any]:
        return {n: _decode(specs[n], v) for n, v in params.items()}

    def judge(values: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
        """Which candidates are refused (a constraint, or taken), and their keys."""
        size = len(next(iter(values.values()))) if values else 1
        full = {**{n: np.full(size, v, dtype=object) for n, v in fixed.items()},
                **{n: _decode_all(specs[n], vs) for n, vs in values.items()}}
        if set(full) != set(dists):  # a partial space (an independent draw): no judge
            return np.zeros(size, dtype=bool), [str(i) for i in range(size)]
        bad = np.zeros(size, dtype=bool)
        for c in constraints:
            bad |= ~c.mask({n: full[n].astype(float) for n in c.names})
        names = sorted(dists)
        keys = [repr([(n, full[n][i]) for n in names]) for i in range(size)]
        bad |= np.asarray([k in taken for k in keys], dtype=bool)
        return bad, keys

    optuna.logging.set_verbosity(logging.WARNING)
    guided = judge if asking.guide else None
    per_fit = max(1, min(asking.per_fit, k // 4)) if asking.guide else 1
    sampler = _GuidedTPE(guided, per_fit, seed=seed,
                         n_startup_trials=N_STARTUP, constant_liar=True, multivariate=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    results = [(p, v) for p, v in told if set(p) == set(dists) and math.isfinite(v)]
    trials = []
    for i in _window(results, window):
        try:
            trials.append(optuna.trial.create_trial(
                params=results[i][0], distributions=dists, value=results[i][1]))
        except ValueError:  # outside this space (a workflow begun before a change)
            continue
    study.add_trials(trials)
    rng = np.random.default_rng(seed)
    points: list[dict[str, Any]] = []
    asks = pruned = 0
    rejected = False
    while len(points) < k and pruned <= spare_asks(k) and dists:
        # uniform draws before TPE models the space, and after an ask whose candidates were
        # all taken (a small or much-tried space): the study asks an untried point of them
        if len(trials) + pruned < N_STARTUP or rejected:
            draws = _uniform(declared, rng, _UNIFORM_DRAWS)
            ok = np.flatnonzero(~judge(draws)[0])
            if ok.size:
                study.enqueue_trial({n: draws[n][ok[0]] for n in dists})
        trial = study.ask(dists)
        asks += 1
        params = decode(trial.params)
        if key(params) in taken or any(not c.holds(params) for c in constraints):
            study.tell(trial, state=TrialState.PRUNED)
            pruned += 1
            rejected = True
            continue
        rejected = False
        taken.add(key(params))
        points.append(params)
    return Batch(points=points, told=len(trials), asks=asks, pruned=pruned)
