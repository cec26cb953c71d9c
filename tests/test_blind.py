"""The look-ahead check's blind processes (`alphaloop.execution._blind`): real processes, real
kernel. What a blind strategy process can read and hold, that the verdict is the one
`lookahead_check` gives in-process, and how its failures are reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import alphaloop
from alphaloop import data as market
from alphaloop.backtest.strategy import library_source
from alphaloop.data._sample import SAMPLE_PATH
from alphaloop.execution import (
    BacktestTask,
    LocalPool,
    RetryPolicy,
    TaskQueue,
    TaskState,
    confinement,
)
from alphaloop.execution._confine import OFF_ENV, read_rules
from alphaloop.execution.task_runner import run_task, run_task_in_process

FAST = RetryPolicy(base=0.01, factor=2.0, cap=0.05, jitter=0.5)
needs_kernel = pytest.mark.skipif(
    not confinement().ok, reason=f"needs kernel confinement: {confinement().describe()}"
)
SAMPLE_DIR = str(SAMPLE_PATH.parent)
PACKAGE = os.path.dirname(os.path.abspath(alphaloop.__file__))
HEADER = '"""Test strategy."""\nimport numpy as np\nimport pandas as pd\n\n'


def strategy(body: str, parameters: str = "{}") -> str:
    return HEADER + f"PARAMETERS = {parameters}\n\n" + textwrap.dedent(body)


PEEKS = strategy(
    """
    def generate_positions(data):
        c = data["close"]
        return (c.shift(-1) > c).astype(float)
    """
)

# Reads files and reports, per path, 1.0 (read), -1.0 (PermissionError) or 0.5 (another error).
READS = strategy(
    """
    PATHS = @@PATHS@@


    def _probe(path):
        try:
            with open(path, "rb") as f:
                f.read(1)
            return 1.0
        except PermissionError:
            return -1.0
        except Exception:
            return 0.5


    def generate_positions(data):
        out = np.zeros(len(data))
        for i, path in enumerate(PATHS):
            out[i] = _probe(path)
        return pd.Series(out, index=data.index)
    """
)

# Reports what it holds: [0] 1.0 if it ran on a longer window before; [1] 1.0 if a DataFrame,
# Series or Index longer than its data lives in its memory; [2] 1.0 if bytes wait in a pipe it
# reads (a window sent before it answered this one).
HOLDS = strategy(
    """
    import fcntl
    import gc
    import stat
    import struct
    import termios

    _longest = [0]


    def _pending():
        for fd in range(3, 64):
            try:
                st = os.fstat(fd)
                if not stat.S_ISFIFO(st.st_mode):
                    continue
                if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY:
                    continue
                waiting = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\\0" * 4))[0]
            except OSError:
                continue
            if waiting:
                return 1.0
        return 0.0


    def generate_positions(data, **params):
        n = len(data)
        out = np.zeros(n)
        out[0] = 1.0 if _longest[0] > n else 0.0
        _longest[0] = max(_longest[0], n)
        kinds = (pd.DataFrame, pd.Series, pd.Index)
        out[1] = 1.0 if any(isinstance(o, kinds) and len(o) > n for o in gc.get_objects()) else 0.0
        out[2] = _pending()
        return pd.Series(out, index=data.index)
    """,
    '{"p": {"default": 1, "low": 1, "high": 9}}',
).replace("import numpy as np", "import os\nimport numpy as np")

# 1.0 on the first bar if it ran on a longer window before (variants run one after the other).
REMEMBERS = strategy(
    """
    _longest = [0]


    def generate_positions(data, **params):
        n = len(data)
        out = np.zeros(n)
        out[0] = 1.0 if _longest[0] > n else 0.0
        _longest[0] = max(_longest[0], n)
        return pd.Series(out, index=data.index)
    """,
    '{"p": {"default": 1, "low": 1, "high": 9}}',
)

# A worker stand-in: a clean host in a fresh interpreter asks for the full positions (its
# strategy process) and for cut positions (blind strategy processes), one job per list.
WORKER = """
import json, sys
from alphaloop import data
from alphaloop.backtest.strategy import from_source
from alphaloop.execution import _blind, _jail
from alphaloop.execution._worker import _warm_up

args = json.loads(sys.argv[1])
_warm_up()
_jail.become_host(memory_limit=1 << 30)
s = from_source(args["source"], "probe")
bars = data.load("GOOG", "1d", args["data_path"])
job = _jail.PositionsJob(
    source=args["source"], name="probe", params=s.resolve_params({}), ticker="GOOG",
    timeframe="1d", data_path=args["data_path"], start=None, end=None, unconfined_ok=True,
)
out = {"full": _jail.current().positions(job, len(bars)).positions[:4].tolist(), "cuts": []}
for lengths in args["jobs"]:
    parts = _blind.cut_positions(job, bars, lengths)
    out["cuts"].append([None if p is None else p[:4].tolist() for p in parts])
_blind.shutdown()
_jail.shutdown()
print(json.dumps(out))
"""


def worker(source: str, jobs: list[list[int]], data_path: str | None = None) -> dict[str, Any]:
    env = {**os.environ, "ALPHALOOP_PY_SANDBOX": "off"}  # `open` & co at the Python level
    env.pop(OFF_ENV, None)
    args = json.dumps({"source": source, "jobs": jobs, "data_path": data_path})
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def task(tid: str, source: str, name: str, **kw: Any) -> BacktestTask:
    return BacktestTask(
        task_id=tid,
        experiment_id="e",
        variant_id=tid,
        strategy_code=source,
        strategy_name=name,
        ticker=str(kw.pop("ticker", "GOOG")),
        check_lookahead=kw.pop("check_lookahead", True),
        **kw,
    )


@pytest.fixture
def q(tmp_path: Path) -> Iterator[TaskQueue]:
    queue = TaskQueue(tmp_path / "queue.db", retry=FAST)
    yield queue
    queue.close()


def run_pool(queue: TaskQueue, tasks: list[BacktestTask], workers: int = 1, **kw: Any) -> None:
    queue.enqueue_batch(tasks)
    with LocalPool(workers, **kw) as pool:
        pool.run(queue, run_task)


# -- the policy ----------------------------------------------------------------------------
def test_read_rules_leave_out_the_excluded_folder_only() -> None:
    rules = read_rules(PACKAGE, (os.path.realpath(SAMPLE_DIR),))
    real = {os.path.realpath(p): whole for p, whole in rules}
    sample = os.path.realpath(SAMPLE_DIR)
    assert real[os.path.realpath(PACKAGE)] is False  # listing only: it holds the sample
    assert real[os.path.dirname(sample)] is False
    assert not any(p == sample or p.startswith(sample + os.sep) for p in real)
    assert real[os.path.realpath(os.path.join(PACKAGE, "backtest"))] is True
    assert real[os.path.realpath(os.path.join(PACKAGE, "data", "_sample.py"))] is True
    assert read_rules(PACKAGE, ()) == [(os.path.realpath(PACKAGE), True)]
    assert read_rules(SAMPLE_PATH, (sample,)) == []


# -- what a blind strategy process can read and hold ----------------------------------------
@needs_kernel
def test_blind_process_cannot_read_the_data_file_or_the_embedded_sample(tmp_path: Path) -> None:
    csv = tmp_path / "GOOG.csv"
    market.load("GOOG").to_csv(csv)
    allowed = os.path.join(PACKAGE, "data", "_sample.py")
    paths = [str(csv), str(SAMPLE_PATH), allowed]
    out = worker(READS.replace("@@PATHS@@", repr(paths)), [[300, 600]], str(csv))
    # the strategy process of the full run reads all three (the data is its input)
    assert out["full"][:3] == [1.0, 1.0, 1.0]
    # the blind one: PermissionError on the data file and the sample, the package readable
    for part in out["cuts"][0]:
        assert part is not None and part[:3] == [-1.0, -1.0, 1.0], out


@needs_kernel
def test_blind_process_never_holds_bars_beyond_its_cut() -> None:
    out = worker(HOLDS, [[150, 300, 450], [100, 200]])
    # the scan sees what a strategy process forked from the worker holds (the loaded sample)
    assert out["full"][1] == 1.0, out
    for job in out["cuts"]:  # two jobs, the second with shorter cuts: a fresh process each
        for part in job:
            assert part is not None and part[:3] == [0.0, 0.0, 0.0], out


# -- the verdict ---------------------------------------------------------------------------
@needs_kernel
def test_peeking_strategy_is_caught_at_the_dates_lookahead_check_finds(q: TaskQueue) -> None:
    t = task("peeks", PEEKS, "peeks")
    run_pool(q, [t])
    result = q.get_result("peeks")
    assert result is not None, q.get_error("peeks")
    reference = run_task_in_process(t)
    assert result["lookahead"] and result["lookahead"] == reference["lookahead"]
    assert result == reference


@needs_kernel
def test_results_with_lookahead_equal_the_in_process_ones(q: TaskQueue) -> None:
    tasks = [
        task(f"lib{i}", library_source(name), name, strategy_parameters=params, **kw)
        for i, (name, params, kw) in enumerate(
            [
                ("sma_crossover", {"fast": 5, "slow": 40}, {}),
                ("sma_crossover", {"fast": 12, "slow": 90}, {"start": "2006-01-03"}),
                ("macd", {}, {"ticker": "AAPL"}),
                ("rsi_reversion", {}, {"end": "2010-12-31"}),
                ("donchian_breakout", {"allow_short": True}, {"ticker": "MSFT"}),
                ("bollinger_reversion", {}, {"eval_start": "2009-01-02"}),
            ]
        )
    ]
    tasks.append(task("peeks", PEEKS, "peeks", ticker="IBM"))
    run_pool(q, tasks, workers=2)
    for t in tasks:
        assert q.get_result(t.task_id) == run_task_in_process(t), t.task_id


@needs_kernel
def test_variants_of_one_strategy_do_not_share_a_blind_process(
    q: TaskQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Variants share the full-data strategy process; a blind process kept for the next
    variant would start its shortest cut holding the previous variant's longest window."""
    monkeypatch.setenv("ALPHALOOP_PY_SANDBOX", "off")  # inherited by the workers
    tasks = [task(f"v{p}", REMEMBERS, "remembers", strategy_parameters={"p": p}) for p in (1, 2, 3)]
    run_pool(q, tasks)
    for t in tasks:
        result = q.get_result(t.task_id)
        assert result is not None, q.get_error(t.task_id)
        assert result["lookahead"] == [], t.task_id


# -- failures ------------------------------------------------------------------------------
def only_in_cuts(body: str) -> str:
    """A strategy that behaves on the whole of GOOG and runs ``body`` on anything shorter."""
    inner = textwrap.indent(textwrap.dedent(body).strip(), " " * 8)
    return (
        HEADER
        + "PARAMETERS = {}\n\n\ndef generate_positions(data):\n    if len(data) < 2148:\n"
        + inner
        + "\n    return pd.Series(1.0, index=data.index)\n"
    )


CRASHES = only_in_cuts(
    """
    far = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(1 << 20,), strides=(1 << 40,))
    return pd.Series(float(far.sum()), index=data.index)
    """
)
HOGS = only_in_cuts(
    """
    big = np.ones(int(50e9 / 8))
    return pd.Series(big[: len(data)] * 0.0, index=data.index)
    """
)
LOOPS = only_in_cuts(
    """
    x = 0
    while True:
        x += 1
    """
)
FAILS = only_in_cuts(
    """
    raise ValueError("not on a cut")
    """
)


@needs_kernel
def test_failures_in_the_blind_process_are_the_strategys(q: TaskQueue) -> None:
    run_pool(
        q,
        [
            task("crashes", CRASHES, "crashes"),
            task("hogs", HOGS, "hogs"),
            task("loops", LOOPS, "loops"),
            task("fails", FAILS, "fails"),
            task("ok", library_source("sma_crossover"), "sma_crossover"),
        ],
        task_timeout=5.0,
        memory_limit=1 << 30,
    )
    expected = {
        "crashes": (1, "strategy 'crashes' crashed its process (killed by SIGSEGV"),
        "hogs": (2, "strategy 'hogs' exceeded the memory limit 1 GiB"),
        "loops": (2, "timed out after 5 s"),
    }
    for tid, (attempts, text) in expected.items():
        assert q.state(tid) is TaskState.FAILED, tid
        tries = [a for a in q.attempts(tid) if a.outcome == "failed"]
        assert len(tries) == attempts, (tid, [a.error for a in tries])
        assert text in (q.get_error(tid) or ""), (tid, q.get_error(tid))
        assert tid == "loops" or "in the look-ahead check" in (q.get_error(tid) or "")
    # a strategy error on a cut is a difference (as lookahead_check counts it), not a failure
    fails = q.get_result("fails")
    assert fails is not None and len(fails["lookahead"]) > 5, q.get_error("fails")
    # the worker and its blind worker serve on after all that
    assert q.state("ok") is TaskState.COMPLETED
    assert q.get_result("ok") == run_task_in_process(
        task("ok", library_source("sma_crossover"), "sma_crossover")
    )


@needs_kernel
def test_a_dead_blind_worker_is_replaced(tmp_path: Path) -> None:
    import psutil

    from alphaloop.execution._host import Host

    t = task("a", PEEKS, "peeks")
    reference = run_task_in_process(t)
    with Host() as host:
        assert host.run(run_task, t) == reference
        blind = host._proc._blind  # the blind worker started beside the worker
        assert blind is not None and psutil.Process(blind.pid).is_running()
        blind.kill()
        blind.wait(5)
        assert host.run(run_task, t.model_copy(update={"task_id": "b"})) == reference
        assert host.run(run_task, t.model_copy(update={"task_id": "c"})) == reference


# -- without kernel confinement ------------------------------------------------------------
def test_without_kernel_confinement_library_and_unconfined_ok_run_blind(
    q: TaskQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OFF_ENV, "1")  # inherited by the workers
    tasks = [
        task("library", library_source("sma_crossover"), "sma_crossover"),
        task("user_ok", PEEKS, "peeks", unconfined_ok=True),
        task("user", PEEKS, "peeks"),
    ]
    run_pool(q, tasks)
    for t in tasks[:2]:
        assert q.get_result(t.task_id) == run_task_in_process(t), t.task_id
    assert q.state("user") is TaskState.FAILED
    assert "kernel confinement unavailable" in (q.get_error("user") or "")
