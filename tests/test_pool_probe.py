"""The local pool's resource probe counts its own process tree's CPU as its own: strategy
processes and blind strategy processes are grandchildren of the pool, born and reaped
between two readings, and their CPU once closed the pool's gate against itself."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import psutil

from alphaloop.execution._pool_probe import PoolProbe, _all_time, _linux_tree, tree_cpu_seconds

# A child that forks a grandchild burning 0.4 s of CPU, reaps it, reports and waits for stdin.
BURN = textwrap.dedent(
    """
    import os, sys, time
    pid = os.fork()
    if pid == 0:
        while time.process_time() < 0.4:
            pass
        os._exit(0)
    os.waitpid(pid, 0)
    print("reaped", flush=True)
    sys.stdin.read()
    """
)


def test_a_reaped_grandchild_s_cpu_is_the_tree_s() -> None:
    me = psutil.Process()
    before = tree_cpu_seconds(me)
    child = subprocess.Popen([sys.executable, "-c", BURN], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "reaped"
        grown = tree_cpu_seconds(me) - before
        # the grandchild's 0.4 s (in ticks of 10 ms: >= 0.3) is in the child's reaped-children
        # count, which the tree sums
        assert grown >= 0.3
        # the old accounting (each process's own CPU) misses it: the child itself used little
        own = psutil.Process(child.pid).cpu_times()
        assert own.user + own.system < grown - 0.25
    finally:
        child.communicate("")
    # once the child is reaped by this process, its whole tree's CPU moves into our count
    assert tree_cpu_seconds(me) - before >= 0.3


def test_pool_probe_reads_fractions_and_never_blocks() -> None:
    probe = PoolProbe(min_interval=0.0)
    for _ in range(5):
        cpu, mem = probe.sample([os.getpid()])
        assert 0.0 <= cpu <= 1.0 and 0.0 < mem <= 1.0


def test_the_proc_walk_agrees_with_psutil() -> None:
    """The cheap walk of ``/proc`` (the tree's entries only) sums what psutil's full scan
    does, grandchildren included."""
    if not sys.platform.startswith("linux"):
        return
    code = "import os, sys\nif os.fork() == 0:\n    sys.stdin.read()\nelse:\n    sys.stdin.read()\n"
    kids = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
            for _ in range(2)]
    try:
        me = psutil.Process()
        deadline = time.monotonic() + 120
        while len(me.children(recursive=True)) < 4:  # both grandchildren forked
            assert time.monotonic() < deadline, "the children never forked"
        for _ in range(3):  # the children may still be starting: compare at one moment
            fast = _linux_tree(me.pid)
            slow = _all_time(me) + sum(_all_time(p) for p in me.children(recursive=True))
            again = _linux_tree(me.pid)
            assert fast is not None and again is not None
            if fast == again:
                assert abs(fast - slow) < 0.015
                return
        raise AssertionError("the tree's CPU never held still for one comparison")
    finally:
        for k in kids:
            k.kill()
            k.wait()
