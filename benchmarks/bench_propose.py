"""Benchmark: the offline developer's proposals — their cost and the quality TPE reaches.

A tuning loop as the workflow runs it, without the pool: INITIAL proposals, then
TUNE_PARAMETERS iterations of ``--variants`` proposals each, every proposal backtested in
this process (library strategies only) on GOOG's first 70% of bars and scored by the default
gate with the evidence floor (the workflow's ``gate_score``), until ``--total`` variants were
tried. Reports, per developer, the best gate score reached after a fixed number of variants
(median over ``--seeds``), the CPU time spent proposing (this process's, so a loaded machine
inflates it less than wall time), and the ``study.ask`` calls.

``--previous REV`` runs the developer of git revision REV (its ``agents/development.py``,
loaded from ``git show``) in the same process, on the same objective (results cached, so
both pay the backtests once), for the comparison with today. Run by hand:

    python benchmarks/bench_propose.py [--variants 8 64] [--total 256] [--seeds 3]
        [--previous f7403e8] [--alternatives]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ["sma_crossover", "macd", "donchian_breakout"]


def load_previous(rev: str) -> Any:
    """The developer module of git revision ``rev``, imported under its own name."""
    text = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:src/alphaloop/agents/development.py"],
        capture_output=True, text=True, check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "previous_development.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("previous_development", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["previous_development"] = module
    spec.loader.exec_module(module)
    return module


class Objective:
    """The in-sample gate score of a library strategy's variant (cached per point)."""

    def __init__(self) -> None:
        from alphaloop.data import load

        bars = load("GOOG")
        self.bars = bars.iloc[: int(len(bars) * 0.7)]
        self.cache: dict[tuple[str, str], float] = {}
        self.seconds = 0.0

    def __call__(self, name: str, code: str, params: dict[str, Any]) -> float:
        from alphaloop.backtest.runner import backtest
        from alphaloop.backtest.strategy import executing_in_process, from_source
        from alphaloop.workflow.gate import evaluate

        k = (code, repr(sorted(params.items())))
        if k not in self.cache:
            t0 = time.perf_counter()
            with executing_in_process():
                result = backtest(from_source(code, name), self.bars, params)
            self.cache[k] = evaluate(result.metrics, min_trades=10).score
            self.seconds += time.perf_counter() - t0
        return self.cache[k]


ASKS = [0]


def count_asks() -> None:
    """Count every `optuna.study.Study.ask` call (either developer's) in ``ASKS``."""
    import optuna

    ask = optuna.study.Study.ask

    def counted(self: Any, *a: Any, **kw: Any) -> Any:
        ASKS[0] += 1
        return ask(self, *a, **kw)

    optuna.study.Study.ask = counted  # type: ignore[method-assign]


def tune(module: Any, objective: Objective, variants: int, total: int, seed: int,
         marks: list[int], options: dict[str, Any]) -> dict[str, Any]:
    from alphaloop.backtest.strategy import load_strategy

    dev = module.OptunaDeveloper({n: load_strategy(n) for n in FAMILIES}, **options)
    history: list[Any] = []
    best_at: dict[int, float] = {}
    best = -9.0
    spent = 0.0
    action = "INITIAL"
    ASKS[0] = 0
    while len(history) < total:
        inp = module.DevelopmentInput(action=action, families=FAMILIES, history=history,
                                      n_variants=min(variants, total - len(history)),
                                      seed=seed, in_sample_bars=len(objective.bars))
        t0 = time.process_time()  # CPU time: the machine may be shared
        props = dev.propose(inp)
        spent += time.process_time() - t0
        if not props:
            break
        for p in props:
            score = objective(p.strategy_name, p.strategy_code, p.parameters)
            history.append(module.PastResult(
                variant_id=f"v{len(history)}", strategy_name=p.strategy_name,
                strategy_code=p.strategy_code, parameters=p.parameters, gate_score=score))
            best = max(best, score)
            for m in marks:
                if len(history) == m:
                    best_at[m] = best
        action = "TUNE_PARAMETERS"
    distinct = len({(r.strategy_name, repr(sorted(r.parameters.items()))) for r in history})
    return {"best_at": best_at, "propose_s": spent, "variants": len(history),
            "distinct": distinct, "asks": ASKS[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--total", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--previous", help="git revision whose developer to compare with")
    parser.add_argument("--alternatives", action="store_true",
                        help="also today's developer asked other ways (ints, fits, windows)")
    args = parser.parse_args()

    from alphaloop.agents import development
    from alphaloop.agents._tuning import Asking, Window

    developers: dict[str, tuple[Any, dict[str, Any]]] = {"today": (development, {})}
    if args.alternatives:  # what today's defaults were chosen against
        developers |= {
            label: (development, {"asking": Asking(**options)})
            for label, options in [
                ("reject+prune", {"guide": False}),
                ("discrete ints", {"relax": False}),
                ("1 ask per fit", {"per_fit": 1}),
                ("4 asks per fit", {"per_fit": 4}),
                ("whole history", {"window": Window(recent=None)}),
                ("window 48+16", {"window": Window(recent=48, best=16)}),
                ("window 16+8", {"window": Window(recent=16, best=8)}),
            ]
        }
    if args.previous:
        developers = {f"previous {args.previous}": (load_previous(args.previous), {}),
                      **developers}
    marks = [m for m in (32, 64, 128, 256, 512, 1024) if m <= args.total]
    objective = Objective()
    count_asks()
    print(f"families {', '.join(FAMILIES)}; GOOG first {len(objective.bars)} bars; "
          f"score = default gate + evidence floor (min 10 trades); median of {args.seeds} seeds")
    head = "".join(f"{'best@' + str(m):>10}" for m in marks)
    print(f"{'developer':<22}{'V/iter':>7}{head}{'propose cpu s':>15}{'ms/prop':>9}"
          f"{'asks/prop':>10}{'distinct':>9}")
    for variants in args.variants:
        for label, (module, options) in developers.items():
            runs = [tune(module, objective, variants, args.total, seed, marks, options)
                    for seed in range(args.seeds)]
            cells = "".join(
                f"{statistics.median(r['best_at'].get(m, float('nan')) for r in runs):>10.3f}"
                for m in marks)
            prop = statistics.median(r["propose_s"] for r in runs)
            n = statistics.median(r["variants"] for r in runs)
            per = f"{statistics.median(r['asks'] for r in runs) / n:>10.2f}"
            distinct = statistics.median(r["distinct"] / r["variants"] for r in runs)
            print(f"{label:<22}{variants:>7}{cells}{prop:>15.2f}{1e3 * prop / n:>9.1f}{per}"
                  f"{distinct:>9.0%}")
    print(f"backtests: {len(objective.cache)} distinct, {objective.seconds:.1f} s")
    print(f"/proc/loadavg: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
