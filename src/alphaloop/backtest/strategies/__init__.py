"""The strategy library: one strategy per file, read as *source* and loaded through the sandbox.

These files are never imported as modules; `alphaloop.backtest.strategy.load_strategy` reads
them with ``importlib.resources`` and loads them with ``from_source``, exactly like user or
generated code. Each defines ``generate_positions(data, **params)`` and ``PARAMETERS``; its
module docstring is its description.
"""
