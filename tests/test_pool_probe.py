"""The local pool's resource probe counts its own process tree's CPU as its own: strategy
processes and blind strategy processes are grandchildren of the pool, born and reaped
between two readings, and their CPU once closed the pool's gate against itself."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import psutil

from alphaloop.execution._pool_probe import PoolProbe, tree_cpu_seconds

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
