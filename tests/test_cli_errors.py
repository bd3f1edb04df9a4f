"""Mistakes stop `regretlab` before anything is compiled: exit 2, one line naming the field, no
run directory (issue 10). An agent that does not fit its env is found by tracing one whole step
and the env's final metrics abstractly (`experiments.run.check_fit`), not when compiling."""

from __future__ import annotations

import pytest
from test_cli import cli, files_under

MISFITS = [  # (overrides, start of the one-line error)
    (["env=streaming", "agents=[ucb1]"], "agents.ucb1: does not fit env StreamingBandit ("),
    (["env=streaming", "agents=[thompson]"], "agents.thompson: does not fit env StreamingBandit ("),
    (["env=streaming", "agents=[etc]"], "agents.etc: does not fit env StreamingBandit ("),
    (["agents=[ucb1]", "metric=faults"], "metric: 'faults' is not a metric of this env (one of: "),
]


@pytest.mark.parametrize(("overrides", "message"), MISFITS, ids=lambda v: " ".join(v)[:40])
def test_misfit_exits_with_one_line_before_compiling(overrides, message, tmp_path):
    d = tmp_path / "run"
    proc = cli("run", *overrides, "horizon=1000", "seeds=2", "progress=false", f"hydra.run.dir={d}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"regretlab: error: {message}"), lines
    assert files_under(d) == []
