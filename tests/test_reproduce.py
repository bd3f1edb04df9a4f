"""`experiments.reproduce`: a paper's items run configs through the CLI's path, write tables,
figures and a report of checks, resume without recomputing, and exit 1 when a check fails.

A tiny fake paper (two-armed Bernoulli, 300 rounds) stands in for a real one, so this runs in
seconds; the real papers' reproductions are exercised in their own (slow) tests.
"""

from __future__ import annotations

import os
import re
import sys
import types

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from experiments import reproduce as rp
from experiments.stats import mean_ci

TINY = ["env=bernoulli", "env.means=[0.3,0.6]", "horizon=300", "seeds=8", "agents=[ucb1]"]


def _item_r1(r: rp.Reproduction) -> None:
    run = r.run("tiny", [*TINY, "compile_cache=null"])
    ucb = run.final("ucb1", "regret")
    m, lo, hi = mean_ci(ucb)
    r.table("R1", "regret", pd.DataFrame({"agent": ["ucb1"], "regret": [m]}), "caption here")
    fig, ax = plt.subplots()
    ax.plot([1, 2], [m, m])
    r.figure("R1", "curve", fig)
    # UCB1 regret on a 0.3-gap instance over 300 rounds is positive and below 300 * 0.3.
    r.check("R1", "ucb1 regret", rp.fmt_ci(m, lo, hi), "(0, 90)", "bound", 0 < m < 90)


def _item_fail(r: rp.Reproduction) -> None:
    r.check("R2", "impossible", "1", "2", "nowhere", False, note="on purpose")
    r.skip("R2", "a rate", "too few points at these sizes")


@pytest.fixture
def fake_paper(monkeypatch):
    mod = types.ModuleType("fake_paper")
    mod.TITLE = "A fake paper"
    mod.ITEMS = {"R1": _item_r1, "R2": _item_fail}
    monkeypatch.setitem(sys.modules, "fake_paper", mod)
    monkeypatch.setitem(rp.PAPERS, "fake", "fake_paper")
    return mod


def test_reproduce_writes_report_and_resumes(fake_paper, tmp_path, capsys):
    out = tmp_path / "repro"
    r = rp.reproduce("fake", out, quick=True, only=["R1"], progress=False)
    assert [c.ok for c in r.checks] == [True]
    for f in ("R1_regret.md", "R1_regret.csv", "R1_curve.png", "report.md"):
        assert (out / f).is_file(), f
    report = (out / "report.md").read_text()
    assert "# Reproduction: A fake paper" in report
    assert "Checks (1/1 ok)" in report and "caption here" in report and "R1_curve.png" in report
    summary = out / "runs" / "tiny" / "summary.json"
    first = summary.stat().st_mtime_ns
    capsys.readouterr()
    rp.reproduce("fake", out, quick=True, only=["R1"], progress=False)
    assert summary.stat().st_mtime_ns == first  # resumed: the finished run was not recomputed
    assert "finished run found, not recomputed" in capsys.readouterr().out
    assert (out / "runs" / "tiny" / ".hydra" / "overrides.yaml").is_file()


def test_skipped_checks_are_listed_in_the_report_and_not_counted(fake_paper, tmp_path, capsys):
    """A check that does not apply at these sizes is printed and listed under its own heading,
    neither ok nor failed (a report that only printed it lost it)."""
    out = tmp_path / "repro"
    r = rp.reproduce("fake", out, quick=True, only=["R2"], progress=False)
    assert [c.ok for c in r.checks] == [False] and r.skipped == [
        ("R2", "a rate", "too few points at these sizes")
    ]
    report = (out / "report.md").read_text()
    assert "Checks (0/1 ok)" in report
    assert "## Not checked at these sizes (1)" in report
    assert "- R2 a rate: too few points at these sizes" in report
    assert "[skip] R2 a rate" in capsys.readouterr().out


def test_cli_exit_codes(fake_paper, tmp_path, capsys):
    assert rp.main(["--list"]) == 0
    assert "fake: A fake paper" in capsys.readouterr().out
    assert rp.main(["nope"]) == 2
    assert "paper: must be one of" in capsys.readouterr().err
    assert rp.main(["fake", "--only", "R9", "--out", str(tmp_path)]) == 2
    assert "--only: fake has items R1, R2 (got 'R9')" in capsys.readouterr().err
    assert rp.main(["fake", "--only", "R2", "--out", str(tmp_path / "x")]) == 1  # failed check
    assert "**FAIL**" in (tmp_path / "x" / "report.md").read_text()


def test_bad_config_in_an_item_is_one_line(fake_paper, tmp_path, capsys, monkeypatch):
    def bad(r):
        r.run("bad", ["horizon=0"])

    monkeypatch.setitem(fake_paper.ITEMS, "R1", bad)
    assert rp.main(["fake", "--only", "R1", "--out", str(tmp_path)]) == 2
    assert "horizon: must be" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def signals():
    """The SIGINT and SIGTERM handlers that `rp.main` installs, restored afterwards (with
    `experiments.interrupt`'s flag cleared, which would stop later simulations)."""
    import signal

    from experiments import interrupt

    kept = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in kept.items():
        signal.signal(number, handler)
    interrupt._pending = False


def test_argument_mistakes_are_one_line_before_anything_runs(fake_paper, tmp_path, capsys, signals):
    out = tmp_path / "out"
    cases = [
        (["fake", "--launcher-override", "hydra.launcher.n_jobs=2"], "--launcher-override: only"),
        (["fake", "--out", "/proc/regretlab"], "--out: cannot write /proc/regretlab ("),
        (["fake", "--only", "R1,R1"], "--only: R1 is listed twice (each item runs once)"),
        (["fake,fake"], "paper: fake is listed twice (each paper runs once)"),
        (["fake,nope"], "paper: must be one of "),
    ]
    for argv, message in cases:
        extra = [] if "--out" in argv else ["--out", str(out)]
        assert rp.main([*argv, *extra]) == 2, argv
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"regretlab-reproduce: error: {message}"), (argv, line)
    assert not out.exists()  # nothing ran


def test_a_bug_inside_an_item_is_not_taken_for_a_bad_argument(fake_paper, tmp_path, signals):
    """Only a ConfigError (a bad config of an item) is one line: a KeyError raised by an item's
    own code is a bug and propagates with its traceback."""

    def buggy(r):
        return {}["missing"]

    fake_paper.ITEMS["R1"] = buggy
    with pytest.raises(KeyError, match="missing"):
        rp.main(["fake", "--only", "R1", "--out", str(tmp_path)])


@pytest.mark.parametrize(("signum", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_and_sigterm_are_one_line_and_resumable(
    signum, status, fake_paper, tmp_path, capsys, signals
):
    """A signal while an item runs: one line, exit 130 (Ctrl-C) or 143 (SIGTERM, as SLURM sends
    at a job's time limit); the runs finished before it are kept and found by the rerun."""
    import signal

    def stopped(r):
        _item_r1(r)  # one finished run
        signal.raise_signal(getattr(signal, signum))

    fake_paper.ITEMS["R2"] = stopped
    assert rp.main(["fake", "--out", str(tmp_path), "--no-progress"]) == status
    (line,) = capsys.readouterr().err.strip().splitlines()
    what = "interrupted" if signum == "SIGINT" else "terminated (SIGTERM)"
    assert line == (
        f"regretlab-reproduce: {what}; rerun the same command to finish (finished runs are kept"
        " and not recomputed)"
    )
    fake_paper.ITEMS["R2"] = _item_fail
    assert rp.main(["fake", "--out", str(tmp_path), "--no-progress"]) == 1
    assert "finished run found, not recomputed" in capsys.readouterr().out


def test_loglog_slope_recovers_a_power_law():
    # y = 3 x^0.5 with 1% multiplicative noise: the slope is 0.5 within a few standard errors.
    rng = np.random.default_rng(0)
    x = np.geomspace(10, 1e6, 12)
    y = 3 * x**0.5 * np.exp(rng.normal(0, 0.01, x.size))
    slope, se = rp.loglog_slope(x, y)
    assert abs(slope - 0.5) < 4 * se and se < 0.01
    assert (
        rp.markdown(pd.DataFrame({"a": [1.23456, np.nan], "b": ["x|y", "z"]})).splitlines()[2]
        == "| 1.235 | x\\|y |"
    )


def test_list_describes_every_item(fake_paper, capsys):
    fake_paper.__doc__ = """A fake paper's reproduction.

* R1 (`_item_r1`): UCB1 on a two-armed instance, regret below the gap times T. More text
  that is not the first sentence.
"""
    # R1: from the module's bullet (first sentence only); R2: its function's docstring
    assert (
        rp.describe(fake_paper, "R1")
        == "UCB1 on a two-armed instance, regret below the gap times T."
    )
    _item_fail.__doc__ = "R2: a check that fails on purpose.\n\nDetails."
    assert rp.describe(fake_paper, "R2") == "a check that fails on purpose."
    assert rp.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "    R1: UCB1 on a two-armed instance" in out and "    R2: a check that fails" in out
    for name in rp.PAPERS:  # every registered paper lists its items with a description
        m = rp.load_paper(name)
        for item in m.ITEMS:
            assert rp.describe(m, item), (name, item)


def _item_ok(r: rp.Reproduction) -> None:
    r.check("R1", "one", "1", "1", "here", True)


def _item_raises(r: rp.Reproduction) -> None:
    raise RuntimeError("broken on purpose\nsecond line")


def test_all_runs_every_paper_and_writes_a_summary(monkeypatch, tmp_path, capsys):
    papers = {}
    for name, items in (("good", {"R1": _item_ok}), ("bad", {"R1": _item_raises})):
        mod = types.ModuleType(f"paper_{name}")
        mod.TITLE, mod.ITEMS = f"The {name} paper", items
        monkeypatch.setitem(sys.modules, f"paper_{name}", mod)
        papers[name] = f"paper_{name}"
    monkeypatch.setattr(rp, "PAPERS", papers)
    assert rp.main(["all", "--quick", "--out", str(tmp_path), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "bad stopped: RuntimeError: broken on purpose" in captured.err
    assert "1/1 checks ok over 2 papers; stopped on an error: bad" in captured.out
    assert (tmp_path / "good" / "report.md").is_file()
    summary = (tmp_path / "summary.md").read_text()
    assert "| good | The good paper | 1/1 | ok |" in summary
    assert "| bad | The bad paper | – | RuntimeError: broken on purpose" in summary
    assert rp.main(["all", "--only", "R1"]) == 2
    assert "--only: not with all" in capsys.readouterr().err


def test_help_names_every_paper_and_option(capsys):
    with pytest.raises(SystemExit) as e:
        rp.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in (*rp.PAPERS, "all", "--list", "--quick", "--only", "--out", "--no-progress",
                 "report.md", "summary.md", "Exit status"):  # fmt: skip
        assert word in out, word


_FAKE_PAPER = """
from experiments.reproduce import Reproduction

TITLE = "The {name} paper"


def _r1(r: Reproduction) -> None:
    {body}


ITEMS = {{"R1": _r1}}
"""


def _table(summary: str) -> list[str]:
    """The summary's table, seconds masked (the time a paper took is no result)."""
    rows = [line for line in summary.splitlines() if line.startswith("|")]
    return [re.sub(r"\| \d+ \| (\S+) \|$", r"| s | \1 |", row) for row in rows]


@pytest.mark.parametrize(
    "launcher",
    # joblib's workers are fresh interpreters that import numpy, pandas, Hydra: ~10 s here
    ["basic", pytest.param("joblib", marks=pytest.mark.slow)],
)
def test_papers_through_a_hydra_launcher_give_the_sequential_summary(
    launcher, monkeypatch, tmp_path, capsys
):
    # Two fake papers as importable files, so that joblib's worker processes (fresh
    # interpreters) import them too: one passes its check, one stops on an error.
    for name, body in (
        ("good", 'r.check("R1", "one", "1", "1", "here", True)'),
        ("bad", 'raise RuntimeError("broken on purpose")'),
    ):
        (tmp_path / f"launched_{name}.py").write_text(_FAKE_PAPER.format(name=name, body=body))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    monkeypatch.setattr(rp, "PAPERS", {"good": "launched_good", "bad": "launched_bad"})
    monkeypatch.chdir(tmp_path)  # Hydra's logs stay in tmp_path too
    seq, par = tmp_path / "seq", tmp_path / "par"
    assert rp.main(["bad,good", "--quick", "--out", str(seq), "--no-progress"]) == 1
    capsys.readouterr()
    argv = ["bad,good", "--quick", "--out", str(par), "--no-progress", "--launcher", launcher]
    if launcher == "joblib":
        argv += ["--launcher-override", "hydra.launcher.n_jobs=2"]
    assert rp.main(argv) == 1
    assert "1/1 checks ok over 2 papers; stopped on an error: bad" in capsys.readouterr().out
    assert (par / "good" / "report.md").is_file()
    for job in (0, 1):  # Hydra's multirun: one job per paper
        assert (par / "multirun" / str(job) / ".hydra" / "overrides.yaml").is_file()
    sequential, launched = (seq / "summary.md").read_text(), (par / "summary.md").read_text()
    assert f"`regretlab-reproduce bad,good --quick --launcher {launcher}`" in launched
    assert _table(launched) == [row.replace(str(seq), str(par)) for row in _table(sequential)]
    assert "| bad | The bad paper | – | RuntimeError: broken on purpose" in launched


def test_launcher_mistakes_are_one_line(fake_paper, tmp_path, capsys):
    assert rp.main(["fake", "--launcher", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("regretlab-reproduce: error: hydra/launcher: no config 'nope'")
    assert "joblib" in err and "\n" not in err
    assert rp.main(["fake,nope", "--out", str(tmp_path)]) == 2
    assert "paper: must be one of" in capsys.readouterr().err
    assert rp.main(["all", "--launcher-override", "hydra.launcher.n_jobs=2"]) == 2
    assert "--launcher-override: only with --launcher" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing ran
