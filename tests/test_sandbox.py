"""The strategy sandbox: static rules, runtime guards, line numbers in errors."""

from __future__ import annotations

import logging
import re
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


# --------------------------------------------------------------------------------------------
# Holes from the attack run: string dispatch, Cython function internals, format strings.
# Where the source shows the name the static check refuses it; where it is computed at run
# time the guard does.
# --------------------------------------------------------------------------------------------

_DISPATCH = "string dispatch: {method}() got the name '{name}'"

STATIC_HOLES = [
    # pandas methods that look a method up by name
    ("def f(d): d.agg('to_csv', 0, 'x.csv')", _DISPATCH.format(method="agg", name="to_csv")),
    ("def f(d): d['close'].agg('to_pickle', 'x')", "agg() got the name 'to_pickle'"),
    ("def f(d): d.apply('to_parquet', args=('x',))", "apply() got the name 'to_parquet'"),
    ("def f(d): d.aggregate('eval', 0, 'close')", "aggregate() got the name 'eval'"),
    ("def f(d): d.transform('style')", "transform() got the name 'style'"),
    ("def f(d): d.agg(func='query')", "agg() got the name 'query'"),
    ("def f(d): d.agg(['mean', 'to_csv'])", "agg() got the name 'to_csv'"),
    ("def f(d): d.agg(('max', 'to_csv'))", "agg() got the name 'to_csv'"),
    ("def f(d): d.agg({'close': ['max', 'to_csv']})", "agg() got the name 'to_csv'"),
    ("def f(d): d.agg({'close': {'open': 'to_csv'}})", "agg() got the name 'to_csv'"),
    ("def f(g): g.agg(x=('close', 'to_csv'))", "agg() got the name 'to_csv'"),
    ("def f(g): g['close'].agg(x='to_csv')", "agg() got the name 'to_csv'"),
    ("def f(d): d.rolling(3).agg('to_csv')", "agg() got the name 'to_csv'"),
    ("def f(d): d.resample('W').apply('to_csv')", "apply() got the name 'to_csv'"),
    ("def f(d): d.ewm(span=3).aggregate(['to_csv'])", "aggregate() got the name 'to_csv'"),
    ("def f(d): d.expanding().agg({'close': 'to_csv'})", "agg() got the name 'to_csv'"),
    ("def f(d): d.groupby('x').transform('to_csv')", "transform() got the name 'to_csv'"),
    ("def f(d): d.pipe('to_csv')", "pipe() got the name 'to_csv'"),
    ("def f(s): s.map('to_csv')", "map() got the name 'to_csv'"),
    ("def f(s): s.map(arg='to_csv')", "map() got the name 'to_csv'"),
    ("def f(d): d.applymap('to_csv')", "applymap() got the name 'to_csv'"),
    ("def f(g): g.filter('to_csv')", "filter() got the name 'to_csv'"),
    ("import pandas as pd; x = pd.pivot_table(1, aggfunc='to_csv')", "got the name 'to_csv'"),
    ("import pandas as pd; x = pd.crosstab(1, 2, aggfunc=['to_csv'])", "got the name 'to_csv'"),
    ("import pandas as pd; x = pd.NamedAgg('close', 'to_csv')", "NamedAgg() got the name"),
    ("import pandas as pd; x = pd.NamedAgg('close', aggfunc='eval')", "got the name 'eval'"),
    # entry points named in the issue
    ("def f(d): return d.style", "forbidden attribute: 'style'"),
    ("import pandas as pd; pd.show_versions(as_json='x')", "forbidden attribute: 'show_versions'"),
    ("x = np.show_config", "forbidden attribute: 'show_config'"),
    ("def f(d): return d.query('close > 1')", "forbidden attribute: 'query'"),
    ("def f(ref): return ref.evaluate()", "forbidden attribute: 'evaluate'"),  # ForwardRef, 3.14
    ("import pandas as pd; x = pd.api.extensions.register_series_accessor", "'register_series"),
    ("import pandas as pd; x = pd.core.accessor.delegate_names", "'delegate_names' changes"),
    ("import pandas as pd; x = pd.core.common.temp_setattr", "'temp_setattr' changes library"),
    # Cython function internals and other frame/code attributes, in getattr-free chains
    ("import talib; x = talib.func.bytes2str.func_globals['sys']", "'func_globals' exposes"),
    ("def f(g): return g.func_code", "forbidden attribute: 'func_code'"),
    ("def f(g): return g.func_closure", "forbidden attribute: 'func_closure'"),
    ("def f(g): return g.func_dict", "forbidden attribute: 'func_dict'"),
    ("def f(g): return g.func_defaults", "forbidden attribute: 'func_defaults'"),
    ("x = (i for i in []).gi_running", "forbidden attribute: 'gi_running'"),
    ("def f(c): return c.cr_await", "forbidden attribute: 'cr_await'"),
    ("def f(t): return t.tb_lineno", "forbidden attribute: 'tb_lineno'"),
    ("def f(c): return c.co_consts", "forbidden attribute: 'co_consts'"),
    ("def f(m): return m.im_func", "forbidden attribute: 'im_func'"),
    ("def f(fr): return fr.f_trace", "forbidden attribute: 'f_trace'"),
    # format strings that read attributes, wherever the literal is
    ("fmt = '{0.real}'", "format attribute: '{0.real}'"),
    ("fmt = '{0[close]}'", "format attribute: '{0[close]}'"),
    ("fmt = '{0:{1.real}}'", "format attribute: '{1.real}'"),
    ("s = '{a.imag}'.format_map({'a': 1})", "format attribute: '{a.imag}'"),
    ("s = b'{0.real}'.decode().format(1)", "format attribute: '{0.real}'"),
    ("s = str(b'{0[k]}', 'ascii')", "format attribute: '{0[k]}'"),
    ("s = b'__globals__'", "dunder string: '__globals__' in a bytes literal"),
]


@pytest.mark.parametrize(("code", "rule"), STATIC_HOLES, ids=[c for c, _ in STATIC_HOLES])
def test_issue_holes_are_refused_by_the_static_check(code: str, rule: str) -> None:
    source = HEADER + code + "\n"
    with pytest.raises(StrategyError) as info:
        check_source(source, "bad")
    message = str(info.value)
    assert message.startswith("strategy 'bad' line 3: "), message
    assert rule in message
    assert "\n" not in message


STATIC_ALLOWED = [
    "def f(d): return d.agg('mean')",
    "def f(d): return d.agg(['mean', 'max', np.std])",
    "def f(d): return d.resample('W').agg({'close': 'last', 'high': ['max']})",
    "def f(g): return g.agg(x=('close', 'max'), y=('open', np.mean))",
    "def f(d): return d.apply(np.sum, axis='columns', result_type='reduce')",
    "def f(s): return s.map({1.0: 'up', -1.0: 'down'})",
    "def f(d): return d.filter(['close', 'open'])",
    "def f(d): return d.pipe((lambda x, frame: frame, 'frame'), 1)",
    "s = '{:.2f} {name!r:>8}'.format(1.0, name='x')",
    "s = b'{}'.decode()",
    r"pattern = '\\d{2,3}[a-z]'",
]


@pytest.mark.parametrize("code", STATIC_ALLOWED)
def test_ordinary_pandas_code_passes_the_new_rules(code: str) -> None:
    check_source(HEADER + code + "\n", "ok")


_RT_HEADER = (
    "import numpy as np\nimport pandas as pd\nimport talib\n\n\ndef generate_positions(data):\n"
)


def _call(body: str, *, checked: bool = True) -> object:
    """Define generate_positions(data) with ``body``, load it (through the static check unless
    ``checked`` is False) and call it on 20 bars; errors come back as StrategyError."""
    source = _RT_HEADER + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
    load = exec_source if checked else sandbox._run_unchecked
    ns = load(source, "rt")
    try:
        return ns["generate_positions"](_bars(20))
    except Exception as exc:
        raise strategy_error_from_exception(exc, "rt") from exc


def _refused(body: str, rule: str, *, checked: bool = True) -> str:
    with pytest.raises(StrategyError) as info:
        _call(body, checked=checked)
    message = str(info.value)
    last_line = 6 + len(textwrap.dedent(body).strip().splitlines())
    assert message.startswith(f"strategy 'rt' line {last_line}: PermissionError: sandbox: ")
    assert rule in message, message
    assert "\n" not in message
    return message


_N = "n = 'to' + '_csv'\n"  # the name is computed: the static check cannot see it
COMPUTED_DISPATCH = [
    ("data.agg(n, 0, PATH)", "agg"),
    ("data['close'].agg(n, PATH)", "agg"),
    ("data.apply(n, args=(PATH,))", "apply"),
    ("data.aggregate([n], 0, PATH)", "aggregate"),
    ("data.transform(n, 0, PATH)", "transform"),
    ("data['close'].agg(['mean', n], PATH)", "agg"),
    ("data.agg({'close': [n]})", "agg"),
    ("data.agg({'close': ('max', n)})", "agg"),
    ("data.agg({'close': {'max', n}})", "agg"),
    ("data.agg({'close': [['mean', n]]})", "agg"),
    ("data.agg(func=n)", "agg"),
    ("data.agg(**{'func': n})", "agg"),
    ("data.groupby(data['open'] > 0).agg(n)", "agg"),
    ("data.groupby(data['open'] > 0).agg(x=('close', n))", "agg"),
    ("data.groupby(data['open'] > 0).agg(x=pd.NamedAgg('close', n))", "agg"),
    ("data.groupby(data['open'] > 0)['close'].agg(x=n)", "agg"),
    ("data.groupby(data['open'] > 0).transform(n)", "transform"),
    ("data.groupby(data['open'] > 0).apply(n)", "apply"),
    ("data.groupby(data['open'] > 0).filter(n)", "filter"),
    ("data.groupby(data['open'] > 0).pipe(n)", "pipe"),
    ("data.rolling(3).agg(n)", "agg"),
    ("data['close'].rolling(3).apply(n)", "apply"),
    ("data.resample('W').agg({'close': n})", "agg"),
    ("data.resample('W').apply(n)", "apply"),
    ("data.ewm(span=3).agg(n)", "agg"),
    ("data.expanding().aggregate([n])", "aggregate"),
    ("data.pipe(n, PATH)", "pipe"),
    ("data['close'].map(n)", "map"),
    ("data.map(n)", "map"),
    ("pd.pivot_table(data, 'close', 'open', None, n)", "pivot_table"),
    ("data.pivot_table(values='close', index='open', aggfunc=[n])", "pivot_table"),
    ("pd.crosstab(data['open'], data['high'], values=data['close'], aggfunc=n)", "crosstab"),
    ("pd.DataFrame.agg(data, n, 0, PATH)", "agg"),  # the function read from the class
    ("pd.Series.apply(data['close'], n)", "apply"),
    ("list(map(data.agg, [n], [0], [PATH]))", "agg"),
    ("data.agg(pd.Series.agg, 0, n)", "agg"),  # pandas calls the checked method with the name
]


@pytest.mark.parametrize(
    ("call", "method"), COMPUTED_DISPATCH, ids=[c for c, _ in COMPUTED_DISPATCH]
)
def test_computed_string_dispatch_is_refused_at_run_time(
    call: str, method: str, tmp_path: Path
) -> None:
    body = f"PATH = {str(tmp_path / 'out')!r}\n{_N}{call}"
    _refused(body, _DISPATCH.format(method=method, name="to_csv"))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("call", "what"),
    [
        ("data.agg(np.array([n]))", "not ndarray"),
        ("data.agg(pd.Series({'close': n}))", "not Series"),
        ("data.agg(data['close'].agg, 0, n)", "not Series"),  # bound method gets the column
        ("data.agg(x=5)", "not int"),
    ],
)
def test_function_arguments_of_other_kinds_are_refused(call: str, what: str) -> None:
    _refused(
        f"{_N}{call}", f"takes a function, a reduction name or a list/dict of those here, {what}"
    )


@pytest.mark.parametrize(
    ("name", "shows"),
    [("'ev' + 'al'", "'eval'"), ("'sty' + 'le'", "'style'"), ("'show_' + 'versions'", "'show_")],
)
def test_computed_names_of_the_issue_entry_points_are_refused(name: str, shows: str) -> None:
    _refused(f"data.agg({name}, 0, 'close')", f"agg() got the name {shows}")


def test_a_callback_cannot_swap_a_name_into_a_checked_list(tmp_path: Path) -> None:
    body = f"""
    path = {str(tmp_path / "x.csv")!r}
    names = [None, 'max']
    def swap(column):
        names[1] = 'to' + '_csv'
        return column.sum()
    names[0] = swap
    return data['close'].agg(names)
    """
    result = _call(body)
    assert list(result.index) == ["swap", "max"]  # type: ignore[attr-defined]
    assert not list(tmp_path.iterdir())


def test_string_dispatch_with_plain_reductions_and_functions_still_runs() -> None:
    body = """
    g = data.groupby(data['open'] > data['open'].median())
    out = [
        data.agg(['mean', np.std]),
        data.resample('W').agg({'close': 'last', 'high': 'max'}),
        g.agg(x=('close', 'max'), y=pd.NamedAgg('open', 'min')),
        g['close'].agg(m='mean'),
        g.transform('cumsum'),
        g.filter(lambda frame: len(frame) > 1),
        data['close'].rolling(3).apply(np.mean, raw=True),
        data['close'].ewm(span=3).agg('mean'),
        data.pipe(lambda frame: frame * 2),
        data['close'].map(lambda v: v + 1),
        data.apply(np.sum, axis='columns'),
        pd.pivot_table(data, values='close', index='open', aggfunc='mean'),
        pd.DataFrame.agg(data, 'sum'),
    ]
    return len(out)
    """
    assert _call(body) == 13


COMPUTED_FORMAT = [
    "f.format(data['close'])",
    "f.format_map({'0': 1})",
    "str.format(f, data['close'])",
    "str.format_map(f, {})",
    "list(map(str.format, [f], [1]))",
    "np.str_(f).format(1)",
]


@pytest.mark.parametrize("call", COMPUTED_FORMAT)
def test_computed_format_strings_reading_attributes_are_refused(call: str) -> None:
    body = f"f = '{{0.to_numpy' + '.x}}'\n{call}"
    _refused(body, "format attribute: '{0.to_numpy.x}' reads attributes by name")


@pytest.mark.parametrize(
    ("make", "field"),
    [
        ("bytes([123, 48, 46, 114, 101, 97, 108, 125]).decode()", "{0.real}"),
        ("str(bytes([123, 48, 91, 107, 93, 125]), 'ascii')", "{0[k]}"),
        ("'{0:{1' + '.real}}'", "{1.real}"),
        ("'{' + '0[close]}'", "{0[close]}"),
    ],
)
def test_format_strings_built_from_bytes_or_nested_are_refused(make: str, field: str) -> None:
    _refused(f"f = {make}\nf.format(data, 1)", f"format attribute: '{field}'")


def test_format_string_cannot_leak_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHALOOP_TEST_SECRET", "s3cr3t-value")
    body = (
        "u = '_' * 2\n"
        "f = '{0.to_numpy.' + u + 'func' + u + '.' + u + 'globals' + u + '[os].environ'\n"
        "f = f + '[ALPHALOOP_TEST_SECRET]}'\n"
        "return f.format(data['close'])"
    )
    message = _refused(body, "format attribute")
    assert "s3cr3t" not in message


def test_computed_format_strings_without_attribute_fields_still_work() -> None:
    body = "return [('{:.' + '2f}').format(1.5), str.format('{} {x}', 1, x=2), b'{}'.decode()]"
    assert _call(body) == ["1.50", "1 2", "{}"]


RUNTIME_INTERNALS = [
    ("x = talib.func.bytes2str.func_globals['sys']", "forbidden attribute: 'func_globals'"),
    ("x = pd.api.types.is_list_like.func_globals", "forbidden attribute: 'func_globals'"),
    ("x = talib.SMA.func_code", "forbidden attribute: 'func_code'"),
    ("x = data.style", "forbidden attribute: 'style'"),
    ("pd.show_versions()", "forbidden attribute: 'show_versions'"),
    ("x = b'{0.real}'.decode().format(1)", "format attribute: '{0.real}'"),
]


@pytest.mark.parametrize(("code", "rule"), RUNTIME_INTERNALS, ids=[c for c, _ in RUNTIME_INTERNALS])
def test_issue_entry_points_fail_at_run_time_without_the_check(code: str, rule: str) -> None:
    _refused(code, rule, checked=False)


ATTRIBUTE_WRITES = [
    "np.where = None",
    "del np.where",
    "pd.DataFrame.agg = len",
    "pd.Series.mean += 1",
    "talib.SMA.x = 1",
    "generate_positions.cache = {}",
]


@pytest.mark.parametrize("code", ATTRIBUTE_WRITES)
def test_attribute_writes_to_modules_classes_and_functions_are_refused(code: str) -> None:
    _refused(code, "attribute write: setting attributes of modules, classes and functions")


def test_attribute_writes_to_data_objects_still_work() -> None:
    body = """
    s = data['close'].copy()
    s.name = 'c'
    s.index.name = 'date'
    a = np.zeros(3)
    a.flags.writeable = False
    return s.name, s.index.name, a.flags.writeable
    """
    assert _call(body) == ("c", "date", False)


def test_attribute_write_target_names_are_checked_without_the_static_check() -> None:
    _refused(
        "s = data['close'].copy()\ns.__class__ = 1", "dunder attribute: '__class__'", checked=False
    )


def test_guard_refuses_module_namespaces_frames_and_reads_from_denied_modules() -> None:
    import os
    import sys

    assert "module namespaces" in (sandbox._value_violation(np.__dict__) or "")
    assert "frame objects" in (sandbox._value_violation(sys._getframe()) or "")
    with pytest.raises(PermissionError, match="reading from it: module 'os' is not allowed"):
        sandbox._guarded_getattr(os, "sep")
    assert sandbox._value_violation(np.where) is None
    assert sandbox._value_violation(_bars(3)) is None


_MONKEYPATCH_TARGET = textwrap.dedent(
    """\
    import numpy as np
    import talib


    def generate_positions(data, which=0):
        u = '_' * 2
        if which == 0:
            return talib.func.bytes2str.func_globals
        if which == 1:
            return data.agg('to' + '_csv', 0, 'never-written.csv')
        if which == 2:
            return ('{0.to_numpy.' + u + 'func' + u + '}').format(data['close'])
        if which == 3:
            np.where = None
        return 0
    """
)


def test_guards_survive_rebinding_of_their_module_globals(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the escaped strategy did: overwrite isinstance and id inside this module so the guard
    # let everything through. The guards hold their own references, captured at import.
    ns = sandbox._run_unchecked(_MONKEYPATCH_TARGET, "patched")
    for name, value in [
        ("isinstance", lambda *_: False),
        ("issubclass", lambda *_: False),
        ("id", lambda _: 0),
        ("type", lambda _: object),
        ("getattr", lambda *_: None),
        ("callable", lambda _: True),
        ("_attr_violation", lambda *_: None),
        ("_value_violation", lambda *_: None),
        ("_origin_violation", lambda *_: None),
        ("_module_violation", lambda *_: None),
        ("_format_attribute_field", lambda *_: None),
        ("_DANGEROUS_IDS", frozenset()),
        ("_FORBIDDEN_ATTRS", {}),
        ("_INTERNAL_PREFIXES", ()),
        ("_SAFE_FUNC_NAMES", frozenset({"to_csv"})),
        ("_SPECIAL_ATTRS", {}),
    ]:
        monkeypatch.setattr(sandbox, name, value, raising=False)
    expected = [
        "forbidden attribute: 'func_globals'",
        "string dispatch: agg() got the name 'to_csv'",
        "format attribute",
        "attribute write",
    ]
    for which, rule in enumerate(expected):
        with pytest.raises(PermissionError, match=re.escape(rule)):
            ns["generate_positions"](_bars(5), which)
    assert not Path("never-written.csv").exists()


def test_rule_tables_and_guards_are_read_only() -> None:
    with pytest.raises(TypeError):
        sandbox._FORBIDDEN_ATTRS["style"] = None  # type: ignore[index]
    with pytest.raises(AttributeError):
        sandbox._GUARDS.getattr = None  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# ALPHALOOP_PY_SANDBOX=off: the Python-level layer off (test-only, unsafe)
# --------------------------------------------------------------------------------------------

_NEEDS_OFF = "import os\npid = os.getpid()\nreader = open\n"


@pytest.fixture
def fresh_switch(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(sandbox, "_warned", {})
    monkeypatch.delenv(sandbox.SWITCH_ENV, raising=False)
    return monkeypatch


def test_switch_turns_the_checks_off_and_back_on(
    fresh_switch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import os

    assert sandbox.python_checks_enabled()
    with pytest.raises(StrategyError, match="line 1: forbidden import: module 'os'"):
        exec_source(_NEEDS_OFF, "sw")

    fresh_switch.setenv("ALPHALOOP_PY_SANDBOX", "off")
    with caplog.at_level(logging.WARNING, logger="alphaloop.backtest.sandbox"):
        assert not sandbox.python_checks_enabled()
        assert check_source(_NEEDS_OFF, "sw") is None
        check_source("def f(:\n", "sw")  # does nothing at all
        ns = exec_source(_NEEDS_OFF, "sw")
        exec_source(_NEEDS_OFF, "sw")
    assert ns["pid"] == os.getpid()
    assert ns["reader"] is open
    assert "__alphaloop_getattr__" not in ns
    assert caplog.text.count("ALPHALOOP_PY_SANDBOX=off") == 1  # once per process
    assert "unsafe" in caplog.text

    fresh_switch.setenv("ALPHALOOP_PY_SANDBOX", "on")
    with pytest.raises(StrategyError, match="forbidden import"):
        exec_source(_NEEDS_OFF, "sw")
    fresh_switch.delenv("ALPHALOOP_PY_SANDBOX")
    with pytest.raises(StrategyError, match="forbidden import"):
        check_source(_NEEDS_OFF, "sw")


def test_switch_ignores_case_and_spaces(fresh_switch: pytest.MonkeyPatch) -> None:
    fresh_switch.setenv("ALPHALOOP_PY_SANDBOX", " OFF ")
    assert not sandbox.python_checks_enabled()
    exec_source(_NEEDS_OFF, "sw")


@pytest.mark.parametrize("value", ["0", "false", "no", "disabled"])
def test_switch_values_other_than_off_keep_the_checks_on(
    fresh_switch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    fresh_switch.setenv("ALPHALOOP_PY_SANDBOX", value)
    with caplog.at_level(logging.WARNING, logger="alphaloop.backtest.sandbox"):
        assert sandbox.python_checks_enabled()
    assert "checks stay on" in caplog.text
    with pytest.raises(StrategyError, match="forbidden import"):
        exec_source(_NEEDS_OFF, "sw")


def test_errors_still_name_the_line_with_the_switch_off(fresh_switch: pytest.MonkeyPatch) -> None:
    fresh_switch.setenv("ALPHALOOP_PY_SANDBOX", "off")
    with pytest.raises(StrategyError, match=r"^strategy 'sw' line 2: ZeroDivisionError"):
        exec_source("x = 1\ny = x / 0\n", "sw")
    with pytest.raises(StrategyError, match=r"^strategy 'sw' line 1: syntax error"):
        exec_source("def f(:\n", "sw")
    ns = exec_source("def generate_positions(data):\n    return 1 / 0\n", "sw")
    with pytest.raises(ZeroDivisionError) as info:
        ns["generate_positions"](None)
    assert str(strategy_error_from_exception(info.value, "sw")).startswith("strategy 'sw' line 2")
