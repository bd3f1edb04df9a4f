"""The trace-driven and episodic worked examples through the command line, end to end:
`regretlab` (run directory, summary), then `regretlab-table` and `regretlab-plot` on it.

The recorded curves are checked against NumPy loops (tests/test_shapes.py has the references):
the deterministic Belady agent's faults exactly, the episodic greedy agent's regret to float32
rounding. Subprocesses as in tests/test_cli.py (its helpers are reused).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from episodic_context import TwoStateContext
from test_cli import EXAMPLES, PNG_MAGIC, cli, ok, summary, tool
from test_shapes import numpy_cache, numpy_episodes
from trace_cache import TraceCache

SEARCH = "hydra.searchpath=[file://examples/conf]"


def test_trace_env_through_the_cli(tmp_path):
    d = tmp_path / "trace"
    T = 3_000
    ok(
        cli(
            "run",
            SEARCH,
            "env=trace_cache",
            "env.pages=6",
            "agents=[cache_belady,cache_always]",
            f"horizon={T}",
            "seeds=2",
            "progress=false",
            f"hydra.run.dir={d}",
            path=(EXAMPLES,),
        )
    )
    s = summary(d)
    assert list(s["agents"]) == ["cache_belady", "cache_always"]
    df = pd.read_parquet(d / "metrics.parquet")
    trace = np.asarray(TraceCache(length=T, pages=6).exogenous((), T, 1)["request"].data)
    want = numpy_cache(trace, lambda t, page, nx, cached, cnx: cached < 0 or nx < cnx)
    got = df[(df.agent == "cache_belady") & (df.seed == 0)].sort_values("t")
    np.testing.assert_array_equal(got["faults"].to_numpy(), want[got["t"].to_numpy() - 1])
    assert s["agents"]["cache_belady"]["final"]["faults"]["mean"] == want[-1]
    table = ok(tool("tables", str(d))).stdout  # in process (tests/test_cli.py: subprocess)
    assert "cache_belady" in table and "faults" in table
    ok(tool("plot", str(d), "-o", str(tmp_path / "faults.png")))
    assert (tmp_path / "faults.png").read_bytes()[:8] == PNG_MAGIC


def test_episodic_env_through_the_cli(tmp_path):
    d = tmp_path / "episodes"
    K = 50
    ok(
        cli(
            "run",
            SEARCH,
            "env=episodic_context",
            "env.episode_length=4",
            "env.slip=0.3",
            "agents=[context_greedy]",
            f"horizon={K}",
            "seeds=2",
            "seed=1",
            "record.grid=every",
            "progress=false",
            f"hydra.run.dir={d}",
            path=(EXAMPLES,),
        )
    )
    df = pd.read_parquet(d / "metrics.parquet").sort_values(["seed", "t"])
    assert sorted(df.t.unique()) == list(range(1, K + 1))  # recorded per episode
    env = TwoStateContext(episode_length=4, slip=0.3)
    for s in range(2):
        regret, _ = numpy_episodes(env, "greedy", K, 1, 2, s)
        # float32 sums of at most 50 terms of size <= 4: agreement to 1e-4 absolute
        np.testing.assert_allclose(df[df.seed == s]["regret"].to_numpy(), regret, atol=1e-4)
    assert (d / "regret.png").read_bytes()[:8] == PNG_MAGIC
    assert "context_greedy" in ok(tool("tables", str(d))).stdout
