"""Resume after a kill (issue 10): no finished job recomputed, every result and figure present,
no temporary file left; settings that only change the display never force a recomputation."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from test_cli import PNG_MAGIC, ROOT, cli, ok, subprocess_env

SWEEP = [
    "-m",
    "agents.ucb1.c=1,2,3",
    "agents=[ucb1]",
    "horizon=20000",
    "seeds=50",
    "progress=false",
]


def _start(args: list[str], stderr=subprocess.DEVNULL) -> subprocess.Popen:
    env = subprocess_env()  # as `cli`'s: it had kept PYTHONDONTWRITEBYTECODE (recompiling JAX)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.run", *args],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
    )  # fmt: skip


def test_multirun_killed_mid_sweep_resumes_without_recomputing(tmp_path):
    d = tmp_path / "sweep"
    args = [*SWEEP, f"hydra.sweep.dir={d}"]
    proc = _start(args)
    deadline = time.monotonic() + 300
    while not (d / "0" / "regret.png").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "job 0 never finished"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid-sweep: job 0 finished, job 1 (maybe) under way
    proc.wait()
    finished = (d / "0" / "summary.json").read_bytes()
    # a kill between summary.json and the figure, and a temporary file left by a killed rename
    (d / "0" / "regret.png").unlink()
    (d / "0" / ".metrics.parquet.abc123.tmp").write_bytes(b"half")
    out = ok(cli("run", *args, "plot=true", "compile_cache=null")).stdout  # display settings only
    assert f"{d / '0'}: finished run found, not recomputed" in out
    assert f"{d / '0'}: missing figure drawn again: regret.png" in out
    assert (d / "0" / "summary.json").read_bytes() == finished
    for job in ("0", "1", "2"):
        assert (d / job / "regret.png").read_bytes()[:8] == PNG_MAGIC
        assert not list((d / job).glob(".*.tmp"))
        assert pd.read_parquet(d / job / "final.parquet").shape[0] == 50
    again = ok(cli("run", *args)).stdout
    assert again.count("finished run found, not recomputed") == 3


@pytest.mark.parametrize(
    ("signum", "status", "what"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")],
    ids=["SIGINT", "SIGTERM"],
)
def test_ctrl_c_and_sigterm_stop_with_one_line(signum, status, what, tmp_path):
    """SIGINT while a run simulates: exit 130, one line, and the run not marked finished;
    SIGTERM (a SLURM job's time limit, `kill`) likewise, exit 143."""
    d = tmp_path / "run"
    # 4e9 agent-steps (a minute or more here): long enough that one of the repeated SIGINTs
    # lands in Python code of the run itself, not only in a GC finalizer that swallows it
    proc = _start(["agents=[ucb1]", "horizon=20000000", "seeds=200", "progress=false",
                   "compile_cache=null", f"hydra.run.dir={d}"], stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 300
    while (
        not (d / "regretlab.log").exists() or "compiling" not in (d / "regretlab.log").read_text()
    ):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    while proc.poll() is None:  # again until it stops: XLA may drop one sent while compiling
        proc.send_signal(signum)
        time.sleep(0.5)
    assert proc.wait(timeout=120) == status
    lines = proc.stderr.read().decode().strip().splitlines()
    assert lines == [f"regretlab: {what}; rerun the same command to finish {d}"], lines
    assert not (d / "summary.json").exists()


def test_sigterm_is_kept_like_a_ctrl_c():
    """`experiments.interrupt` handles SIGTERM as SIGINT (the flag, the raise), naming it and
    giving 143 as the exit status."""
    from experiments import interrupt

    previous = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
    try:
        interrupt.install()
        assert (interrupt.received(), interrupt.exit_status()) == ("interrupted", 130)
        with contextlib.suppress(KeyboardInterrupt):  # swallowed, as in a finalizer
            signal.raise_signal(signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
        assert (interrupt.received(), interrupt.exit_status()) == ("terminated (SIGTERM)", 143)
        interrupt.install()  # a new run starts clean
        interrupt.check()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def test_a_swallowed_ctrl_c_still_stops_the_run():
    """A SIGINT whose KeyboardInterrupt is swallowed (as in a finalizer) still stops the engine
    at its next chunk: `experiments.interrupt` keeps a flag beside the raise."""
    from bandits.agents import UCB1
    from bandits.envs import BernoulliBandit
    from experiments import interrupt
    from experiments.simulate import simulate

    env = BernoulliBandit((0.2, 0.8))
    previous = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
    try:
        interrupt.install()
        interrupt.check()  # nothing pending after install
        with contextlib.suppress(KeyboardInterrupt):  # swallowed, as in a finalizer
            signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            simulate(env, env.default_params(), UCB1(), horizon=300, seeds=2, chunk_size=100)
        interrupt.install()  # a new run starts clean
        interrupt.check()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def test_a_ctrl_c_swallowed_by_a_finalizer_prints_nothing():
    """The raise that lands in a finalizer (as in XLA's garbage-collector callback) is not
    reported as "Exception ignored": the user sees only the engine's one line."""
    script = """
import signal, sys
from experiments import interrupt

class Finalized:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # the handler raises inside the finalizer

interrupt.install()
Finalized()  # collected at once: the KeyboardInterrupt is unraisable there
try:
    interrupt.check()
except KeyboardInterrupt:
    print("stopped")
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    assert done.stdout.strip() == "stopped"
    assert done.stderr == ""  # without the hook: "Exception ignored in: <function Finalized...>"
