"""The strategy interface: loading, parameter specs, position validation, look-ahead check,
and the indicator helpers with their memo."""

from __future__ import annotations

import contextlib
import gc
import pickle
import textwrap
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaloop.backtest import _positions
from alphaloop.backtest import indicators as ind
from alphaloop.backtest.strategy import (
    Choice,
    FloatRange,
    IntRange,
    Strategy,
    executing_in_process,
    from_source,
    library_names,
    load_strategy,
    lookahead_check,
    parse_assignments,
    parse_parameters,
)
from alphaloop.errors import ConfigError, StrategyError


def synthetic_bars(n: int = 400, seed: int = 7) -> pd.DataFrame:
    """A random-walk OHLCV frame shaped like `alphaloop.data.load` output."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.015, n)))
    open_ = close * np.exp(rng.normal(0.0, 0.004, n))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.01, n))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.01, n))
    index = pd.bdate_range("2015-01-02", periods=n, name="date")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": 1e6},
        index=index,
    )


BARS = synthetic_bars()


@pytest.fixture(autouse=True)
def _in_process() -> Iterator[None]:
    """These tests run their own (trusted) strategy sources in the test process."""
    with executing_in_process():
        yield


def src(body: str, params: str = "PARAMETERS = {}") -> str:
    """Strategy source with the usual imports, a docstring and ``params``."""
    return (
        '"""Test strategy.\n\nMore text."""\n'
        "import numpy as np\nimport pandas as pd\n\n"
        f"{params}\n\n" + textwrap.dedent(body)
    )


FLAT = src(
    """
    def generate_positions(data, n=3):
        return pd.Series(np.zeros(len(data.index)), index=data.index)
    """,
    'PARAMETERS = {"n": {"default": 3, "low": 1, "high": 9}}',
)


# -- loading --------------------------------------------------------------------------------
def test_from_source_builds_an_immutable_strategy():
    s = from_source(FLAT, "flat")
    assert s.name == "flat"
    assert s.description.startswith("Test strategy.")
    assert s.summary == "Test strategy."
    assert s.defaults() == {"n": 3}
    assert isinstance(s.parameters["n"], IntRange)
    assert len(s.code_hash) == 12
    with pytest.raises(AttributeError):
        s.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.parameters["m"] = s.parameters["n"]  # type: ignore[index]


def test_strategy_pickles_as_its_source():
    s = from_source(FLAT, "flat")
    t = pickle.loads(pickle.dumps(s))
    assert t == s and t.code_hash == s.code_hash
    assert np.array_equal(t.positions(BARS), s.positions(BARS))


def test_code_hash_changes_with_source():
    assert from_source(FLAT, "a").code_hash != from_source(FLAT + "\n# x\n", "a").code_hash


def test_syntax_error_names_the_line():
    with pytest.raises(StrategyError, match=r"strategy 'bad' line 9: syntax error"):
        from_source(src("def generate_positions(data:\n    return 0\n"), "bad")


def test_sandbox_rejection_is_a_strategy_error():
    with pytest.raises(StrategyError, match=r"line \d+: forbidden import"):
        from_source(src("import os\ndef generate_positions(data):\n    return 0\n"), "bad")


def test_missing_generate_positions():
    with pytest.raises(StrategyError, match="defines no generate_positions"):
        from_source(src("x = 1\n"), "bad")


def test_missing_parameters():
    source = "import pandas as pd\ndef generate_positions(data):\n    return 0\n"
    with pytest.raises(StrategyError, match="defines no PARAMETERS"):
        from_source(source, "bad")


def test_parameters_not_a_dict():
    with pytest.raises(StrategyError, match="PARAMETERS must be a dict"):
        from_source(src("def generate_positions(data):\n    return 0\n", "PARAMETERS = [1]"), "bad")


def test_exception_in_module_body_names_the_line():
    s = from_source(src("x = 1 / 0\ndef generate_positions(data):\n    return 0\n"), "bad")
    with pytest.raises(StrategyError, match=r"line 9: ZeroDivisionError"):
        s.positions(BARS)


def test_reading_a_strategy_never_runs_it():
    # the module body would fail (and, outside a confined process, must not run at all)
    body = "x = 1 / 0\ndef generate_positions(data, n=3):\n    return 0\n"
    params = 'PARAMETERS = {"n": {"default": 3, "low": 1, "high": 9}}'
    s = from_source(src(body, params), "lazy")
    assert s.defaults() == {"n": 3} and s.summary == "Test strategy."


@contextlib.contextmanager
def outside_trusted_block() -> Iterator[None]:
    """Leave the autouse `executing_in_process` block for a moment."""
    saved = _positions._local.depth
    _positions._local.depth = 0
    try:
        yield
    finally:
        _positions._local.depth = saved


def test_strategy_code_does_not_run_outside_a_confined_process():
    s = from_source(FLAT, "flat_outside")
    with outside_trusted_block():
        with pytest.raises(RuntimeError, match="runs only in a kernel-confined process"):
            s.positions(BARS)
        # the library's own files are trusted like alphaloop itself
        assert load_strategy("buy_and_hold").positions(BARS).shape == (len(BARS),)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ("PARAMETERS = dict(n={'default': 3, 'low': 1, 'high': 9})", "must be a literal"),
        ("N = 3\nPARAMETERS = {'n': {'default': N, 'low': 1, 'high': 9}}", "must be a literal"),
        ("PARAMETERS = {}\nPARAMETERS = {}", "assigned 2 times"),
        ("PARAMETERS = {}\nPARAMETERS['n'] = {'default': 3, 'low': 1, 'high': 9}", "2 times"),
        ("PARAMETERS: dict = {**{}}", "must be a literal"),
        ("if True:\n    PARAMETERS = {}", "defines no PARAMETERS"),
    ],
)
def test_parameters_must_be_one_literal(params, match):
    with pytest.raises(StrategyError, match=match):
        from_source(src("def generate_positions(data, **kw):\n    return 0\n", params), "p")


def test_parameters_changed_by_the_module_body_are_refused():
    params = "PARAMETERS = {}\nPARAMETERS.update(n={'default': 3, 'low': 1, 'high': 9})"
    s = from_source(src("def generate_positions(data, **kw):\n    return 0\n", params), "p2")
    with pytest.raises(StrategyError, match="PARAMETERS changed while the module ran"):
        s.positions(BARS)


def test_declared_parameter_must_be_accepted():
    source = src(
        "def generate_positions(data, n=3):\n    return 0\n",
        'PARAMETERS = {"m": {"default": 3, "low": 1, "high": 9}}',
    )
    with pytest.raises(StrategyError, match="declares 'm' but generate_positions does not"):
        from_source(source, "bad")


def test_undeclared_argument_without_default():
    with pytest.raises(StrategyError, match="argument 'k' has no default"):
        from_source(src("def generate_positions(data, k):\n    return 0\n"), "bad")


def test_library_names_and_load():
    names = library_names()
    assert "sma_crossover" in names and "buy_and_hold" in names
    assert all(not n.startswith("_") for n in names)
    assert load_strategy("sma_crossover").name == "sma_crossover"


def test_unknown_library_name_suggests():
    with pytest.raises(StrategyError, match=r"did you mean 'sma_crossover'\?.*buy_and_hold"):
        load_strategy("sma_crosover")


def test_load_from_path(tmp_path):
    path = tmp_path / "my_flat.py"
    path.write_text(FLAT)
    s = load_strategy(str(path))
    assert s.name == "my_flat"
    assert load_strategy(path).code_hash == s.code_hash


def test_missing_file(tmp_path):
    with pytest.raises(StrategyError, match=r"not found;.*library strategies: .*sma_crossover"):
        load_strategy(str(tmp_path / "nope.py"))


# -- PARAMETERS specs ------------------------------------------------------------------------
def test_parse_parameters_kinds():
    specs = parse_parameters(
        {
            "n": {"default": 10, "low": 2, "high": 100, "step": 2},
            "k": {"default": 2.0, "low": 0.5, "high": 4.0, "log": True},
            "m": {"default": 2, "low": 0.5, "high": 4},  # a float anywhere makes it float
            "short": {"default": True, "choices": [True, False]},
            "mode": {"default": "a", "choices": ["a", "b"]},
        },
        "s",
    )
    assert isinstance(specs["n"], IntRange) and specs["n"].step == 2
    assert isinstance(specs["k"], FloatRange) and specs["k"].log
    assert isinstance(specs["m"], FloatRange) and specs["m"].default == 2.0
    assert isinstance(specs["short"], Choice) and specs["short"].choices == (True, False)
    assert specs["mode"].to_dict() == {"default": "a", "choices": ["a", "b"]}
    assert specs["n"].to_dict() == {"default": 10, "low": 2, "high": 100, "step": 2}


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"default": 1, "low": 2, "high": 100}, "need low <= default <= high"),
        ({"default": 200, "low": 2, "high": 100}, "need low <= default <= high"),
        ({"default": 1.0, "low": 0.0, "high": 2.0, "log": True}, "log=True needs low > 0"),
        ({"default": 3, "choices": [1, 2]}, "default 3 is not one of the choices"),
        ({"default": True, "choices": [1, 0]}, "default True is not one of the choices"),
        ({"default": 1, "choices": []}, "choices"),
        ({"default": 1, "choices": [1, 1]}, "listed twice"),
        ({"default": 1, "low": 0}, "missing high"),
        ({"default": True, "low": False, "high": True}, "for True/False use choices"),
        ({"default": 1, "lo": 0, "low": 0, "high": 2}, "unknown key 'lo'"),
        ({"default": 4, "low": 2, "high": 10, "step": 3}, "not on the grid"),
        ([1, 2], "must be a dict"),
    ],
)
def test_bad_parameter_spec_names_strategy_parameter_and_problem(spec, problem):
    with pytest.raises(StrategyError, match="strategy 'strat' parameter 'p'") as info:
        parse_parameters({"p": spec}, "strat")
    assert problem in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_parameter_name():
    with pytest.raises(StrategyError, match="must be a Python identifier"):
        parse_parameters({"not ok": {"default": 1, "choices": [1]}}, "s")


# -- resolve_params -------------------------------------------------------------------------
SPACE = src(
    """
    def generate_positions(data, fast=10, k=2.0, allow_short=True, mode="a"):
        return pd.Series(np.zeros(len(data.index)), index=data.index)
    """,
    'PARAMETERS = {"fast": {"default": 10, "low": 2, "high": 100},'
    ' "k": {"default": 2.0, "low": 0.5, "high": 4.0},'
    ' "allow_short": {"default": True, "choices": [True, False]},'
    ' "mode": {"default": "a", "choices": ["a", "b"]}}',
)


def test_resolve_params_parses_cli_strings():
    s = from_source(SPACE, "space")
    overrides = parse_assignments(["fast=20", "allow_short=false", "k=2.5", "mode= b"])
    assert s.resolve_params(overrides) == {"fast": 20, "k": 2.5, "allow_short": False, "mode": "b"}
    assert s.resolve_params({"fast": 20.0, "k": 3, "allow_short": "Yes"})["fast"] == 20
    assert s.resolve_params({}) == s.defaults()
    assert s.resolve_params(None) == s.defaults()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fast": "1000"}, r"parameter 'fast': 1000 is out of range \[2, 100\]"),
        ({"fast": "abc"}, r"'fast': must be an integer, got 'abc'"),
        ({"fast": "2.5"}, "must be an integer"),
        ({"fast": True}, "must be an integer"),
        ({"k": "0.1"}, r"0.1 is out of range \[0.5, 4\]"),
        ({"k": "nan"}, "must be finite"),
        ({"allow_short": "maybe"}, r"'maybe' is not one of \[True, False\]"),
        ({"mode": "c"}, r"'c' is not one of \['a', 'b'\]"),
        ({"fsat": "3"}, r"has no parameter 'fsat'; did you mean 'fast'\? parameters: fast, k"),
    ],
)
def test_resolve_params_errors(overrides, message):
    s = from_source(SPACE, "space")
    with pytest.raises(ConfigError, match=message):
        s.resolve_params(overrides)


def test_parse_assignments_rejects_garbage():
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_assignments(["fast"])


# -- positions validation -------------------------------------------------------------------
def returning(expr: str) -> Strategy:
    body = f"def generate_positions(data):\n    n = len(data.index)\n    return {expr}\n"
    return from_source(src(body), "s")


def test_positions_accepts_series_and_array():
    pos = returning("pd.Series(np.linspace(-1, 1, n), index=data.index)").positions(BARS)
    assert pos.dtype == np.float64 and pos[0] == -1.0 and pos[-1] == 1.0
    arr = returning("np.ones(n, dtype=int)").positions(BARS)
    assert arr.dtype == np.float64 and (arr == 1.0).all()
    flags = returning("pd.Series(np.arange(n) % 2 == 0, index=data.index)").positions(BARS)
    assert flags[:3].tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("pd.Series(np.zeros(n - 1), index=data.index[1:])", "returned 399 positions for 400"),
        ("np.zeros(n + 1)", r"array of shape \(401,\) for 400 bars"),
        ("pd.Series(np.zeros(n))", "index differs from data.index"),
        ("list(np.zeros(n))", "returned list; return a pandas Series"),
        ("None", "returned NoneType"),
        ("pd.Series(['a'] * n, index=data.index)", "positions must be numbers"),
        (
            "pd.Series(np.r_[np.full(5, np.nan), np.zeros(n - 5)], index=data.index)",
            r"NaN at 2015-01-02 \(first of 5\); fill warm-up bars with 0 \(flat\)",
        ),
        (
            "pd.Series(np.r_[np.zeros(3), 2.0, np.zeros(n - 4)], index=data.index)",
            r"returned 2.0 at 2015-01-07; positions must lie in \[-1, 1\]",
        ),
        ("pd.Series(np.full(n, -np.inf), index=data.index)", "must lie in"),
    ],
)
def test_bad_positions(expr, message):
    with pytest.raises(StrategyError, match=rf"strategy 's': generate_positions .*{message}"):
        returning(expr).positions(BARS)


def test_exception_inside_generate_positions_names_the_line():
    body = "def generate_positions(data):\n    x = 0\n    return 1 / x\n"
    with pytest.raises(StrategyError, match=r"strategy 'boom' line 11: ZeroDivisionError: "):
        from_source(src(body), "boom").positions(BARS)


def test_positions_fills_missing_params_with_defaults():
    s = from_source(SPACE, "space")
    assert s.positions(BARS, {"fast": 3}).shape == (len(BARS),)


# -- look-ahead -----------------------------------------------------------------------------
PEEK = src(
    """
    def generate_positions(data):
        close = data["close"]
        tomorrow = close.shift(-1).fillna(close)  # look-ahead: tomorrow's close
        return pd.Series(np.where(tomorrow > close, 1.0, -1.0), index=data.index)
    """
)


def test_lookahead_check_catches_shift_minus_one():
    s = from_source(PEEK, "peek")
    differ = lookahead_check(s, BARS)
    assert len(differ) >= 5
    assert all(isinstance(d, pd.Timestamp) for d in differ)


def test_lookahead_check_passes_a_causal_strategy():
    s = from_source(
        src(
            """
            def generate_positions(data):
                close = data["close"]
                return pd.Series(np.where(close > close.shift(1), 1.0, 0.0), index=data.index)
            """
        ),
        "causal",
    )
    assert lookahead_check(s, BARS) == []
    assert lookahead_check(s, BARS, cuts=[100, "2015-06-01", pd.Timestamp("2015-09-01")]) == []


def test_lookahead_check_catches_full_sample_normalisation():
    s = from_source(
        src(
            """
            def generate_positions(data):
                close = data["close"]
                z = (close - close.mean()) / close.std()  # uses the whole sample
                return (-z).clip(-1, 1)
            """
        ),
        "zscore",
    )
    assert lookahead_check(s, BARS, cuts=4) != []


# -- indicators -----------------------------------------------------------------------------
CLOSE = BARS["close"].to_numpy()
HIGH = BARS["high"].to_numpy()
LOW = BARS["low"].to_numpy()


def same(a, b) -> bool:
    return np.allclose(a, b, equal_nan=True, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n", [1, 2, 10, 50])
def test_sma_matches_pandas_and_talib(n):
    expected = BARS["close"].rolling(n).mean().to_numpy()
    assert same(ind.sma(CLOSE, n), expected)
    assert same(ind.sma(BARS["close"], n), expected)
    if n > 1:
        assert same(ind.sma(CLOSE, n), talib.SMA(CLOSE, n))


def test_indicators_match_talib_and_pandas():
    assert same(ind.ema(CLOSE, 12), talib.EMA(CLOSE, 12))
    assert same(ind.rsi(CLOSE, 14), talib.RSI(CLOSE, 14))
    assert same(ind.atr(HIGH, LOW, CLOSE, 14), talib.ATR(HIGH, LOW, CLOSE, 14))
    for got, want in zip(
        ind.bbands(CLOSE, 20, 2.0), talib.BBANDS(CLOSE, 20, 2.0, 2.0), strict=True
    ):
        assert same(got, want)
    for got, want in zip(ind.macd(CLOSE, 12, 26, 9), talib.MACD(CLOSE, 12, 26, 9), strict=True):
        assert same(got, want)
    s = BARS["close"]
    assert same(ind.rolling_max(CLOSE, 20), s.rolling(20).max())
    assert same(ind.rolling_min(CLOSE, 20), s.rolling(20).min())
    assert same(ind.rolling_std(CLOSE, 20), s.rolling(20).std(ddof=0))
    assert same(ind.rolling_std(CLOSE, 20, ddof=1), s.rolling(20).std(ddof=1))
    assert same(ind.returns(CLOSE, 5), s.pct_change(5))
    up, dn = ind.donchian(HIGH, LOW, 20)
    assert same(up, BARS["high"].rolling(20).max().shift(1))
    assert same(dn, BARS["low"].rolling(20).min().shift(1))


def test_indicator_argument_errors():
    with pytest.raises(ValueError, match="period must be an integer >= 1"):
        ind.sma(CLOSE, 0)
    with pytest.raises(ValueError, match="integer"):
        ind.sma(CLOSE, 2.5)
    with pytest.raises(ValueError, match="fast < slow"):
        ind.macd(CLOSE, 26, 12)
    with pytest.raises(ValueError, match="1-D"):
        ind.sma(np.zeros((3, 3)), 2)


def test_crossover_side_hand_worked():
    a = np.array([np.nan, 1.0, 2.0, 3.0, 2.0, 3.0, 2.0, 1.0])
    b = np.array([np.nan, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    # sign of a-b: nan, -, 0, +, 0, +, 0, -  -> first cross (- to +) at 3; the ties at 4 and 6
    # keep the side; the cross down at 7.
    assert ind.crossover_side(a, b).tolist() == [0, 0, 0, 1, 1, 1, 1, -1]
    assert ind.crossover_side(np.ones(5), np.zeros(5)).tolist() == [0] * 5


def test_latch():
    le = np.array([0, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
    lx = np.array([0, 0, 0, 1, 0, 0, 1, 0], dtype=bool)
    se = np.array([0, 0, 0, 0, 1, 0, 0, 0], dtype=bool)
    sx = np.array([0, 0, 0, 0, 0, 0, 1, 0], dtype=bool)
    assert ind.latch(le, lx).tolist() == [0, 1, 1, 0, 0, 0, 0, 0]
    assert ind.latch(le, lx, se, sx).tolist() == [0, 1, 1, 0, -1, -1, 0, 0]
    both = np.ones(3, dtype=bool)
    assert ind.latch(both, ~both, both, ~both).tolist() == [0, 0, 0]
    assert ind.latch(np.array([np.nan, 1.0]), np.zeros(2)).tolist() == [0, 1]


# -- the memo -------------------------------------------------------------------------------
@pytest.fixture
def fresh_memo():
    ind.clear_memo()
    yield
    ind.clear_memo()


def test_memo_hits_for_the_same_content(fresh_memo):
    first = ind.sma(BARS["close"], 10)
    again = ind.sma(BARS["close"].to_numpy(), 10)  # a new view object of the same column
    copy = ind.sma(CLOSE.copy(), 10)  # a writeable copy: same content, hashed
    info = ind.memo_info()
    assert info.misses == 1 and info.hits == 2
    assert np.shares_memory(again, first) and np.shares_memory(copy, first)  # one result
    with pytest.raises(ValueError, match="WRITEABLE"):  # and nobody can poison it
        again.flags.writeable = True
    assert not first.flags.writeable  # shared results are read-only
    with pytest.raises(ValueError):
        first[0] = 1.0


def test_memo_distinguishes_arrays_with_equal_ends(fresh_memo):
    a = CLOSE.copy()
    b = CLOSE.copy()
    b[len(b) // 2 + 1] *= 1.5  # same length, first and last values
    assert same(ind.sma(a, 5), talib.SMA(a, 5))
    assert same(ind.sma(b, 5), talib.SMA(b, 5))
    assert not same(ind.sma(a, 5), ind.sma(b, 5))


def test_memo_sees_in_place_changes_of_writeable_arrays(fresh_memo):
    a = CLOSE.copy()
    before = ind.sma(a, 5).copy()
    a[100] += 10.0
    after = ind.sma(a, 5)
    assert same(after, talib.SMA(a, 5)) and not same(after, before)


def test_memo_survives_id_and_address_reuse(fresh_memo):
    rng = np.random.default_rng(0)
    for _ in range(50):
        x = rng.normal(size=300).cumsum()
        x.flags.writeable = False  # take the identity (address) path
        assert same(ind.sma(x, 7), talib.SMA(np.array(x), 7))
        del x
        gc.collect()


def test_memo_sees_sampled_rewrites_of_read_only_views(fresh_memo):
    base = CLOSE.copy()
    view = base.view()
    view.flags.writeable = False
    ind.sma(view, 5)
    base[0] = 1.0  # the first value is always sampled
    assert same(ind.sma(view, 5), talib.SMA(base, 5))


def test_memo_is_bounded(fresh_memo, monkeypatch):
    monkeypatch.setattr(ind, "MEMO_ENTRIES", 8)
    for n in range(2, 30):
        ind.sma(CLOSE, n)
    assert ind.memo_info().entries == 8
    assert same(ind.sma(CLOSE, 2), talib.SMA(CLOSE, 2))  # evicted, recomputed correctly


def test_memo_keys_on_parameters(fresh_memo):
    assert not same(ind.sma(CLOSE, 5), ind.sma(CLOSE, 6))
    assert not same(ind.ema(CLOSE, 5), ind.sma(CLOSE, 5))
    assert not same(ind.bbands(CLOSE, 20, 1.0)[0], ind.bbands(CLOSE, 20, 2.0)[0])


def test_memo_is_thread_safe(fresh_memo, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(ind, "MEMO_ENTRIES", 16)  # force evictions while threads race

    def work(n: int) -> bool:
        return same(ind.sma(CLOSE, n), talib.SMA(CLOSE, n))

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(work, [2 + i % 40 for i in range(400)]))
    assert ind.memo_info().entries <= 16


def test_nullable_positions_report_nan():
    with pytest.raises(StrategyError, match="NaN at 2015-01-02"):
        returning(
            "pd.Series([None] + [0.0] * (n - 1), index=data.index, dtype='Float64')"
        ).positions(BARS)


# -- properties -----------------------------------------------------------------------------
small = st.lists(st.sampled_from([-2.0, -1.0, 0.0, 1.0, 2.0, np.nan]), min_size=1, max_size=40)


def reference_side(d: list[float]) -> list[float]:
    out, last, crossed = [], 0.0, False
    for x in d:
        side = 0.0 if np.isnan(x) or x == 0 else float(np.sign(x))
        if side:
            crossed = crossed or (last != 0 and side != last)
            last = side
        out.append(last if crossed else 0.0)
    return out


@settings(max_examples=300, deadline=None)
@given(small)
def test_crossover_side_matches_loop_and_is_causal(d):
    a = np.array(d)
    got = ind.crossover_side(a, np.zeros_like(a))
    assert got.tolist() == reference_side(d)
    for k in range(1, len(d)):
        assert np.array_equal(ind.crossover_side(a[:k], np.zeros(k)), got[:k])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(*[st.booleans()] * 4), min_size=1, max_size=40))
def test_latch_matches_loop(rows):
    le, lx, se, sx = (np.array(col, dtype=bool) for col in zip(*rows, strict=True))
    expected, s = [], 0.0
    for a, b, c, d in rows:
        if (s > 0 and b) or (s < 0 and d):
            s = 0.0
        if a != c:
            s = 1.0 if a else -1.0
        expected.append(s)
    assert ind.latch(le, lx, se, sx).tolist() == expected
