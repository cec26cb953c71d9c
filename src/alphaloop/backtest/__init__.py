"""alphaloop.backtest: strategies, the vectorized engine and its metrics.

* `strategy` — the strategy interface (`generate_positions` + `PARAMETERS`), loading through the
  `sandbox`, the library, and `lookahead_check`.
* `engine` — positions -> equity, returns, trades and metrics (fills at the next bar's open).
* `metrics` — `METRIC_KEYS` and their definitions.
* `runner` — a strategy on data: `backtest` and the parameter-grid fast path `run_grid`.
* `indicators` — TA-Lib backed helpers strategy code may import.

Submodules are imported on use, so `import alphaloop.backtest` stays cheap.
"""

__all__ = ["engine", "indicators", "metrics", "runner", "sandbox", "strategy"]
