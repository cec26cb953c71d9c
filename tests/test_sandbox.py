"""The strategy sandbox: static rules, runtime guards, line numbers in errors."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaloop.backtest import sandbox
from alphaloop.backtest.sandbox import (
    ALLOWED_MODULES,
    check_source,
    exec_source,
    safe_builtins,
    strategy_error_from_exception,
)
from alphaloop.errors import StrategyError

STRATEGY_DIR = Path(sandbox.__file__).parent / "strategies"

# The forbidden code lands on line 3; multi-line cases put the violation on their first line.
HEADER = '"""A strategy."""\nimport numpy as np\n'


def _bars(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    index = pd.date_range("2020-01-01", periods=n, freq="D", name="date")
    return pd.DataFrame(
        {
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": np.full(n, 1e6),
        },
        index=index,
    )


# --------------------------------------------------------------------------------------------
# Static rules: each forbidden construct is refused with its line and rule
# --------------------------------------------------------------------------------------------

FORBIDDEN = [
    ("import os", "forbidden import: module 'os' gives file/process access"),
    ("from subprocess import run", "module 'subprocess' gives file/process access"),
    ("import socket", "module 'socket' gives network access"),
    ("import scipy", "module 'scipy' is not allowed"),
    ("import importlib", "forbidden import"),
    ("from alphaloop import errors", "module 'alphaloop.errors'"),
    ("from alphaloop.backtest import engine", "module 'alphaloop.backtest.engine'"),
    ("import pandas.io.common", "forbidden import: submodule 'pandas.io.common'"),
    ("import numpy._core", "forbidden import: submodule 'numpy._core'"),
    ("from numpy import *", "import *"),
    ("from numpy import load", "forbidden attribute: 'load'"),
    ("from . import x", "relative imports"),
    ("__import__('os')", "forbidden name: '__import__'"),
    ("open('x')", "forbidden name: 'open'"),
    ("eval('1')", "forbidden name: 'eval'"),
    ("exec('x = 1')", "forbidden name: 'exec'"),
    ("compile('1', 'f', 'eval')", "forbidden name: 'compile'"),
    ("g = globals()", "forbidden name: 'globals'"),
    ("v = vars()", "forbidden name: 'vars'"),
    ("breakpoint()", "forbidden name: 'breakpoint'"),
    ("x = input()", "forbidden name: 'input'"),
    ("x = getattr(np, '__class__')", "forbidden name: 'getattr'"),
    ("setattr(np, 'x', 1)", "forbidden name: 'setattr'"),
    ("t = type(np)", "forbidden name: 'type'"),
    ("x = ().__class__.__subclasses__()", "dunder attribute: '__class__'"),
    ("def f(): return f.__globals__", "dunder attribute: '__globals__'"),
    ("x = __builtins__", "dunder name: '__builtins__'"),
    ("import numpy as __builtins__", "dunder name: '__builtins__'"),
    ("def __getattr__(name): pass", "dunder name: '__getattr__'"),
    ("x = np._core", "private attribute: '_core'"),
    ("x = (i for i in []).gi_frame", "forbidden attribute: 'gi_frame'"),
    ("import pandas as pd; df = pd.read_csv('x.csv')", "file I/O: 'read_csv'"),
    ("import pandas as pd; pd.read_parquet('x')", "file I/O: 'read_parquet'"),
    ("x = np.load('x.npy')", "forbidden attribute: 'load'"),
    ("np.save('x', 1)", "forbidden attribute: 'save'"),
    ("x = np.fromfile('x')", "forbidden attribute: 'fromfile'"),
    ("x = np.loadtxt('x')", "forbidden attribute: 'loadtxt'"),
    ("x = np.memmap('x')", "forbidden attribute: 'memmap'"),
    ("x = np.ctypeslib", "forbidden attribute: 'ctypeslib'"),
    ("x = np.zeros(1).ctypes", "forbidden attribute: 'ctypes'"),
    ("a = np.zeros(3); a.tofile('x')", "forbidden attribute: 'tofile'"),
    ("def f(df): df.to_csv('x')", "file I/O: 'to_csv'"),
    ("def f(df): df.to_pickle('x')", "file I/O: 'to_pickle'"),
    ("def f(df): return df.query('close > 1')", "forbidden attribute: 'query'"),
    ("import pandas as pd; x = pd.eval('1 + 1')", "forbidden attribute: 'eval'"),
    ("import pandas as pd; x = pd.io", "names module 'io'"),
    ("import typing; h = typing.get_type_hints", "forbidden attribute: 'get_type_hints'"),
    ("s = 'x'.join(['__class__'])", "dunder string: '__class__'"),
    ("s = '{0.real}'.format(1)", "format attribute: '{0.real}'"),
    ("s = '{0.__class__}'.format(1)", "dunder string: '__class__'"),
    ("class A:\n    pass", "forbidden statement: class definitions"),
    ("match 1:\n    case _:\n        pass", "forbidden statement: match"),
    ("async def f():\n    pass", "forbidden statement: async"),
]


@pytest.mark.parametrize(("code", "rule"), FORBIDDEN, ids=[c for c, _ in FORBIDDEN])
def test_forbidden_construct_is_rejected_with_line_and_rule(code: str, rule: str) -> None:
    source = HEADER + code + "\n"
    with pytest.raises(StrategyError) as info:
        check_source(source, "bad")
    message = str(info.value)
    assert message.startswith("strategy 'bad' line 3: "), message
    assert rule in message
    assert "\n" not in message


@pytest.mark.parametrize(("code", "rule"), FORBIDDEN[:3], ids=[c for c, _ in FORBIDDEN[:3]])
def test_exec_source_checks_first(code: str, rule: str) -> None:
    with pytest.raises(StrategyError, match="line 3"):
        exec_source(HEADER + code + "\n", "bad")


def test_forbidden_import_lists_the_allowed_modules() -> None:
    with pytest.raises(StrategyError) as info:
        check_source("import os\n", "s")
    for module in ALLOWED_MODULES - {"__future__"}:
        assert module in str(info.value)


def test_first_violation_in_source_order_is_reported() -> None:
    source = "x = 1\ny = np.load\nimport os\n"
    with pytest.raises(StrategyError, match="line 2: forbidden attribute: 'load'"):
        check_source(source, "s")


def test_syntax_error_reports_line() -> None:
    source = "import numpy as np\n\ndef f(:\n    pass\n"
    with pytest.raises(StrategyError, match=r"^strategy 'broken' line 3: syntax error: "):
        check_source(source, "broken")


def test_compiler_only_syntax_error_reports_line() -> None:
    with pytest.raises(StrategyError, match="line 2: syntax error: 'return' outside function"):
        check_source("x = 1\nreturn x\n", "s")


def test_oversized_source_is_refused() -> None:
    source = "x = 1\n" * (sandbox.MAX_SOURCE_CHARS // 6 + 1)
    with pytest.raises(StrategyError, match="the limit is"):
        check_source(source, "huge")


# --------------------------------------------------------------------------------------------
# Allowed code
# --------------------------------------------------------------------------------------------

ALLOWED = [
    "import numpy as np",
    "from numpy import where, nan",
    "import numpy.lib.stride_tricks",
    "from numpy.lib.stride_tricks import sliding_window_view",
    "import pandas as pd",
    "import talib",
    "from talib import abstract",
    "import math",
    "import statistics",
    "from typing import Optional",
    "from __future__ import annotations",
    "from alphaloop.backtest import indicators",
    "from alphaloop.backtest import indicators as ind",
    "import alphaloop.backtest.indicators as ind",
    "open = 1.0\nx = open * 2",  # binding a name called 'open' is fine (OHLC columns)
    "def f(data):\n    return data.open",  # and so is the attribute
    "x = [1, 2].copy()\nx.remove(1)",
    "s = f'{1:.2f}'",
    "s = '{:.2f} {}'.format(1.0, 2)",
    "if __name__ == '__main__':\n    pass",
    "def f(s):\n    return s.to_numpy(), s.to_list(), s.to_frame()",
]


@pytest.mark.parametrize("code", ALLOWED)
def test_allowed_code_passes_and_runs(code: str) -> None:
    source = code + "\n"
    check_source(source, "ok")
    exec_source(source, "ok")


SMA_CROSSOVER = textwrap.dedent(
    '''\
    """Long when the fast SMA is above the slow one, short otherwise."""
    from __future__ import annotations

    import math

    import numpy as np
    import pandas as pd
    import talib

    PARAMETERS = {
        "fast": {"default": 10, "low": 2, "high": 50},
        "slow": {"default": 30, "low": 5, "high": 200},
    }


    def _signal(fast_ma: np.ndarray, slow_ma: np.ndarray) -> np.ndarray:
        pos = np.where(fast_ma > slow_ma, 1.0, -1.0)
        pos[np.isnan(slow_ma)] = 0.0
        return pos


    def generate_positions(data: pd.DataFrame, fast: int = 10, slow: int = 30) -> pd.Series:
        close = data["close"].to_numpy()
        fast_ma = talib.SMA(close, fast)
        slow_ma = talib.SMA(close, slow)
        pos = _signal(fast_ma, slow_ma)
        assert math.isfinite(pos.sum())
        print("positions", pos.sum())
        return pd.Series(pos, index=data.index).rolling(1).mean().fillna(0.0)
    '''
)


def test_sma_crossover_executes_and_returns_positions() -> None:
    ns = exec_source(SMA_CROSSOVER, "sma_crossover")
    assert ns["__name__"] == "alphaloop_strategy_sma_crossover"
    assert ns["PARAMETERS"]["fast"]["default"] == 10
    data = _bars()
    positions = ns["generate_positions"](data, fast=5, slow=20)
    assert isinstance(positions, pd.Series)
    assert positions.index.equals(data.index)
    assert set(np.unique(positions.to_numpy())) <= {-1.0, 0.0, 1.0}
    assert (positions.iloc[19:] != 0).all()


def test_indicators_module_is_importable_lazily() -> None:
    pytest.importorskip("alphaloop.backtest.indicators")
    source = (
        "from alphaloop.backtest import indicators as ind\n"
        "import numpy as np\n"
        "def generate_positions(data, n=5):\n"
        "    x = ind.sma(data['close'].to_numpy(), n)\n"
        "    return np.nan_to_num(x)\n"
    )
    ns = exec_source(source, "uses_ind")
    assert len(ns["generate_positions"](_bars())) == 300


def test_print_goes_to_debug_log_not_stdout(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="alphaloop.strategy.talker"):
        exec_source("print('hello', 42)\n", "talker")
    assert capsys.readouterr().out == ""
    assert "hello 42" in caplog.text


LIBRARY = sorted(p for p in STRATEGY_DIR.glob("*.py") if not p.name.startswith("_"))


@pytest.mark.skipif(not LIBRARY, reason="no library strategies yet")
@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_library_strategies_pass_and_run(path: Path) -> None:
    ns = exec_source(path.read_text(), path.stem)
    defaults = {k: spec["default"] for k, spec in ns["PARAMETERS"].items()}
    positions = ns["generate_positions"](_bars(), **defaults)
    assert len(positions) == 300


# --------------------------------------------------------------------------------------------
# Runtime guards hold when the static check is bypassed
# --------------------------------------------------------------------------------------------


def test_safe_builtins_has_no_dangerous_entries() -> None:
    table = safe_builtins()
    for name in (
        "open", "exec", "eval", "compile", "getattr", "setattr", "delattr", "globals",
        "locals", "vars", "input", "breakpoint", "type", "__build_class__", "memoryview",
    ):  # fmt: skip
        assert name not in table, name
    assert table["len"] is len
    assert table["__import__"] is not __builtins__


@pytest.mark.parametrize("module", ["os", "sys", "subprocess", "socket", "alphaloop.errors"])
def test_guarded_import_refuses_modules_off_the_list(module: str) -> None:
    namespace = {"__builtins__": safe_builtins()}
    with pytest.raises(ImportError, match="forbidden import"):
        exec(f"__import__({module!r})", namespace)


def test_guarded_import_refuses_from_import_of_a_denied_module_attribute() -> None:
    namespace = {"__builtins__": safe_builtins()}
    with pytest.raises(ImportError, match="sandbox"):
        exec("from statistics import sys", namespace)


RUNTIME_ESCAPES = [
    ("import os", "ImportError"),
    ("x = __import__('os')", "ImportError"),
    ("x = open('/etc/passwd')", "NameError: name 'open'"),
    ("x = eval('1')", "NameError: name 'eval'"),
    ("x = getattr(1, '__class__')", "NameError: name 'getattr'"),
    ("class A:\n    pass", "NameError"),  # no __build_class__
    ("x = ().__class__", "PermissionError"),
    ("def f(): pass\nx = f.__globals__", "PermissionError"),
    ("import pandas as pd\nx = pd.io.common.os", "PermissionError"),
    ("import statistics\nx = statistics.random", "PermissionError: sandbox: attribute 'random'"),
    ("import typing\nx = typing.collections", "module 'collections' is not allowed"),
    ("import statistics\nx = statistics.numbers", "module 'numbers' is not allowed"),
    ("import numpy as np\nx = np.lib.format", "module 'numpy.lib.format' is not allowed"),
    ("x = (i for i in []).gi_frame", "PermissionError"),
]


@pytest.mark.parametrize(("code", "expected"), RUNTIME_ESCAPES, ids=[c for c, _ in RUNTIME_ESCAPES])
def test_escape_attempts_fail_at_runtime_without_the_check(code: str, expected: str) -> None:
    source = "x = 0\n" + code + "\n"
    with pytest.raises(StrategyError) as info:
        sandbox._run_unchecked(source, "sneaky")
    message = str(info.value)
    assert message.startswith("strategy 'sneaky' line "), message
    assert expected in message


def test_missing_name_in_from_import_is_an_ordinary_import_error() -> None:
    with pytest.raises(StrategyError, match="line 1: ImportError: cannot import name"):
        exec_source("from math import no_such_thing\n", "s")


def test_library_c_code_can_still_import_its_internals() -> None:
    # numpy's C code imports numpy._core._methods through the strategy's __import__.
    exec_source("import numpy as np\nx = np.arange(4).sum()\ny = np.ones(3).std()\n", "c")


# --------------------------------------------------------------------------------------------
# Errors name the strategy line
# --------------------------------------------------------------------------------------------


def test_exception_in_module_body_reports_the_line() -> None:
    source = "import numpy as np\n\nx = 1\ny = x / 0\n"
    with pytest.raises(StrategyError) as info:
        exec_source(source, "body")
    assert str(info.value) == "strategy 'body' line 4: ZeroDivisionError: division by zero"
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_error_from_exception_inside_strategy_function() -> None:
    source = textwrap.dedent(
        """\
        import numpy as np


        def helper(x):
            return x["missing"]


        def generate_positions(data):
            return helper(data)
        """
    )
    ns = exec_source(source, "fn")
    try:
        ns["generate_positions"]({"close": 1})
    except KeyError as exc:
        error = strategy_error_from_exception(exc, "fn")
    else:  # pragma: no cover
        pytest.fail("expected KeyError")
    assert str(error) == "strategy 'fn' line 5: KeyError: 'missing'"


def test_error_from_exception_inside_library_call_names_strategy_line() -> None:
    source = (
        "import numpy as np\n\ndef generate_positions(data):\n    return np.ones(3) @ np.ones(4)\n"
    )
    ns = exec_source(source, "lib")
    with pytest.raises(ValueError) as info:
        ns["generate_positions"](None)
    error = strategy_error_from_exception(info.value, "lib")
    assert str(error).startswith("strategy 'lib' line 4: ValueError: ")
    assert "\n" not in str(error)


def test_error_from_exception_without_strategy_frame_omits_line() -> None:
    error = strategy_error_from_exception(RuntimeError("boom\nsecond line"), "x")
    assert str(error) == "strategy 'x': RuntimeError: boom second line"


def test_traceback_shows_strategy_source_lines() -> None:
    import traceback

    ns = exec_source("def generate_positions(data):\n    return 1 / 0\n", "tb")
    try:
        ns["generate_positions"](None)
    except ZeroDivisionError:
        text = traceback.format_exc()
    assert 'File "<strategy tb>", line 2' in text
    assert "return 1 / 0" in text
