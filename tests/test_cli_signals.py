"""SIGTERM handling of the CLI: the command's own process turns SIGTERM into SystemExit (staging is
cleaned), forked workers keep the default action (so a process pool can terminate them), and the caller's
handler is back once ``main`` returns (several commands in one process, as in these tests)."""
from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import time

from nnunet_stroke import cli


def test_main_restores_the_callers_sigterm_handler(capsys):
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["trainers"]) == 0
    capsys.readouterr()
    assert signal.getsignal(signal.SIGTERM) is before


def _sleep():
    time.sleep(60)


def test_a_forked_worker_still_dies_on_sigterm():
    previous = signal.signal(signal.SIGTERM, cli._terminate_handler(multiprocessing.current_process().pid))
    try:
        worker = multiprocessing.get_context("fork").Process(target=_sleep)
        worker.start()
        time.sleep(0.2)
        worker.terminate()
        worker.join(timeout=20)
        assert worker.exitcode == -signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)


POOL_LOOP = """
import multiprocessing, os, signal
from nnunet_stroke import cli
signal.signal(signal.SIGTERM, cli._terminate_handler(os.getpid()))
for _ in range(40):  # a pool terminated right after its tasks, while its fresh workers may still be starting
    with multiprocessing.get_context("fork").Pool(8) as pool:
        pool.map(abs, range(3))
"""


def test_fork_pools_terminate_under_the_cli_handler():
    """A SIGTERM that reaches a fresh forked worker before CPython's after-fork reset used to be dropped,
    and Pool.terminate() then waited forever (nnU-Net's fork pools hung the demo)."""
    subprocess.run([sys.executable, "-c", POOL_LOOP], check=True, timeout=120)
