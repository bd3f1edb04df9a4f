"""`regretlab sweep.FIELD=[...]` end to end: the same job directories and files as a multirun.

The reference is Hydra's own multirun of the same values (``-m agents.ucb1.c=0.5,2``): each job
directory of the in-program sweep must hold the same config, overrides and bit-identical metric
tables, and resume must skip finished jobs exactly as a multirun does.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml
from test_cli import PNG_MAGIC, TINY, cli, files_under, ok, regretlab, summary, tool

VALUES = ("0.5", "2")


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep_cli") / "inprogram"
    proc = ok(
        cli(
            "run",
            "agents=[ucb1]",
            *TINY,
            f"sweep.agents.ucb1.c=[{','.join(VALUES)}]",
            f"hydra.run.dir={d}",
        )
    )
    return d, proc


@pytest.fixture(scope="module")
def multirun(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep_cli") / "multirun"
    ok(
        cli(
            "run",
            "-m",
            f"agents.ucb1.c={','.join(VALUES)}",
            "agents=[ucb1]",
            *TINY,
            f"hydra.sweep.dir={d}",
        )
    )
    return d


def test_sweep_writes_the_multiruns_job_directories(swept, multirun):
    d, proc = swept
    assert sorted(p.name for p in d.iterdir() if p.is_dir() and p.name != ".hydra") == ["0", "1"]
    for job, value in enumerate(VALUES):
        mine, theirs = d / str(job), multirun / str(job)
        for table in ("metrics.parquet", "final.parquet"):
            pd.testing.assert_frame_equal(
                pd.read_parquet(mine / table), pd.read_parquet(theirs / table)
            )
        ours_cfg = yaml.safe_load((mine / ".hydra/config.yaml").read_text())
        assert ours_cfg == yaml.safe_load((theirs / ".hydra/config.yaml").read_text())
        assert ours_cfg["agents"]["ucb1"]["c"] == float(value)
        overrides = yaml.safe_load((mine / ".hydra/overrides.yaml").read_text())
        assert f"agents.ucb1.c={value}" in overrides
        assert sorted(overrides) == sorted(
            yaml.safe_load((theirs / ".hydra/overrides.yaml").read_text())
        )
        assert (mine / "regret.png").read_bytes()[:8] == PNG_MAGIC
        engine = summary(mine)["agents"]["ucb1"]["engine"]
        assert engine["sweep"]["configs_in_program"] == 2  # one program for both values
        assert summary(mine)["config"] == summary(theirs)["config"]
    assert "configs per program: [2]" in proc.stdout
    assert f"regretlab-plot {d} --x agents.ucb1.c" in proc.stdout


def test_interrupted_in_program_sweep_resumes_only_the_unfinished_job(swept, tmp_path):
    src, _ = swept
    d = tmp_path / "again"
    shutil.copytree(src, d)
    (d / "1" / "summary.json").unlink()  # written last: a job killed before it is unfinished
    job0 = (d / "0" / "summary.json").read_bytes()
    args = (
        "agents=[ucb1]",
        *TINY,
        f"sweep.agents.ucb1.c=[{','.join(VALUES)}]",
        f"hydra.run.dir={d}",
    )
    proc = ok(cli("run", *args))
    assert "1 of 2 sweep jobs finished, not recomputed" in proc.stdout
    assert (d / "0" / "summary.json").read_bytes() == job0
    pd.testing.assert_frame_equal(
        pd.read_parquet(d / "1" / "metrics.parquet"), pd.read_parquet(src / "1" / "metrics.parquet")
    )
    assert "2 of 2 sweep jobs finished" in ok(cli("run", *args)).stdout


def test_plot_against_the_swept_field(swept, tmp_path):
    d, _ = swept
    out = tmp_path / "c.png"
    ok(tool("plot", str(d), "--x", "agents.ucb1.c", "-o", str(out)))  # in process
    assert out.read_bytes()[:8] == PNG_MAGIC


BAD_SWEEPS = [  # (override, start of the one-line error)
    (
        "sweep.agents.ucb1.cc=[1,2]",
        "sweep.agents.ucb1.cc: not a field of the config (agents.ucb1 has: c",
    ),
    ("sweep.horizon=[100,200]", "sweep.horizon: only fields of env and agents"),
    ("sweep.agents.ucb1.c=2", "sweep.agents.ucb1.c: must be a non-empty list"),
    ("sweep.agents.ucb1.c=[1,-1]", "sweep job 1 (agents.ucb1.c=-1): agents.ucb1.c: "),
    ("sweep.agents.thompson.spares=[1]", "sweep.agents.thompson.spares: not a field of the config"),
    ("sweep.agents={}", "sweep.agents: names no field to sweep"),  # once: one job, no sweep
    ("sweep=5", "sweep: must map config fields to lists of values"),  # once: a traceback
]


@pytest.mark.parametrize(("override", "message"), BAD_SWEEPS)
def test_bad_sweep_exits_with_one_line_and_no_run_directory(override, message, tmp_path):
    """The first through the interpreter, the others in process (`test_cli.regretlab`)."""
    d = tmp_path / "run"
    run = cli if (override, message) == BAD_SWEEPS[0] else lambda _, *args: regretlab(*args)
    proc = run("run", "agents=[ucb1]", "progress=false", override, f"hydra.run.dir={d}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"regretlab: error: {message}"), lines
    assert not d.exists(), files_under(d)  # no run directory, not even an empty one


@pytest.mark.parametrize(
    ("args", "conflict"),
    [
        (  # other values: jobs 0 and 1 would be replaced, job 2 of the old sweep left beside
            ["sweep.agents.ucb1.c=[2,4]"],
            "job 0: a finished run of another config (differs in: agents.ucb1.c)",
        ),
        ([], "the jobs of a sweep (0/, 1/)"),  # a single run into a sweep's directory
    ],
)
def test_a_command_into_another_sweeps_directory_is_refused(swept, tmp_path, args, conflict):
    """One line naming what the directory holds, exit 2, nothing changed (the root's
    `.hydra/`, written by Hydra before the refusal, put back as it was)."""
    d = tmp_path / "inprogram"
    shutil.copytree(swept[0], d)
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    proc = regretlab("agents=[ucb1]", *TINY, *args, f"hydra.run.dir={d}")  # in process
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"regretlab: error: hydra.run.dir: {d} holds another command's"), line
    assert conflict in line and "use a new directory" in line
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before
