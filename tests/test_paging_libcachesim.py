"""Parity with a real cache simulator: LRU, FIFO and Belady fault counts equal libCacheSim's.

libCacheSim (Yang et al.; the ``libcachesim`` Python package, a test/benchmark dependency only,
GPL-3.0) replays the same trace written in its binary oracleGeneral format (unit-size objects,
integer cache size in objects, next-access times absolute with INT64_MAX for "never"; see
`paging.traces.write_oracle_general`). Our side runs the way a user does: the app's config
composed with ``env=paging env.trace=<file> agents=[lru,fifo,belady]``, validated, instantiated
and executed by `experiments.run` (the code path of ``regretlab``), reading the run's
summary.json. Fault counts are integers: equality is exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from paging import traces as T
from paging.predictions import next_arrivals

lcs = pytest.importorskip("libcachesim")

CONF = Path(__file__).resolve().parents[1] / "conf"


def write_trace(path: Path, name: str, length: int, k: int, **kw) -> np.ndarray:
    x = T.generate_block(name, 0, length, cache_size=k, **kw)
    ids, dense = np.unique(x, return_inverse=True)
    nxt = next_arrivals(dense.astype(np.int32), ids.size)
    # libCacheSim counts requests from 1; "never" is INT64_MAX (written for -1)
    T.write_oracle_general(path, x, np.where(nxt >= length, -1, nxt + 1))
    return x


def libcachesim_faults(path: Path, k: int, length: int) -> dict[str, int]:
    out = {}
    for name, cls in (("lru", lcs.LRU), ("fifo", lcs.FIFO), ("belady", lcs.Belady)):
        params = lcs.ReaderInitParam()
        params.ignore_obj_size = True  # unit sizes: the cache size counts objects
        reader = lcs.TraceReader(
            trace=str(path),
            trace_type=lcs.TraceType.ORACLE_GENERAL_TRACE,
            reader_init_params=params,
        )
        miss_ratio, _ = cls(int(k)).process_trace(reader)
        out[name] = round(miss_ratio * length)
    return out


def regretlab_faults(path: Path, k: int, length: int, out_dir: Path) -> dict[str, int]:
    """The `regretlab env=paging ...` path, in process (compose, prepare, execute)."""
    from experiments.run import execute, prepare

    overrides = [
        "env=paging",
        "agents=[lru,fifo,belady]",
        f"env.trace={path}",
        "env.length=null",
        f"env.cache_size={k}",
        f"horizon={length}",
        "seeds=1",
        "plot=false",
        "progress=false",
        "compile_cache=null",
    ]
    GlobalHydra.instance().clear()
    try:
        initialize_config_dir(config_dir=str(CONF), version_base="1.3")
        exp = prepare(compose(config_name="config", overrides=overrides), overrides)
    finally:
        GlobalHydra.instance().clear()
    execute(exp, out_dir)
    summary = json.loads((out_dir / "summary.json").read_text())
    faults = {n: int(a["final"]["faults"]["mean"]) for n, a in summary["agents"].items()}
    opt = {int(a["final"]["opt_faults"]["mean"]) for a in summary["agents"].values()}
    assert opt == {faults["belady"]}  # the env's host-side OPT is the Belady agent's count
    return faults


def test_lru_fifo_belady_equal_libcachesim(tmp_path):
    path, k, length = tmp_path / "zipf.oracleGeneral.bin", 16, 4000
    write_trace(path, "zipf", length, k, pages=200, alpha=0.9, seed=3)
    assert regretlab_faults(path, k, length, tmp_path / "run") == libcachesim_faults(
        path, k, length
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, kw",
    [
        ("zipf", {"pages": 1000, "alpha": 1.0, "seed": 1}),
        ("uniform", {"pages": 60, "seed": 2}),
        ("phases", {"pages": 300, "phase_length": 500, "working_set": 40, "seed": 3}),
        ("cyclic", {"pages": 1}),
    ],
)
@pytest.mark.parametrize("k", [1, 7, 50])
def test_parity_on_several_traces_and_cache_sizes(tmp_path, name, kw, k):
    path, length = tmp_path / f"{name}.oracleGeneral.bin", 20_000
    write_trace(path, name, length, k, **kw)
    assert regretlab_faults(path, k, length, tmp_path / "run") == libcachesim_faults(
        path, k, length
    )


@pytest.mark.slow
def test_parity_on_a_million_request_zipf_trace(tmp_path):
    path, k, length = tmp_path / "zipf1m.oracleGeneral.bin", 1000, 1_000_000
    write_trace(path, "zipf", length, k, pages=100_000, alpha=1.0, seed=7)
    assert regretlab_faults(path, k, length, tmp_path / "run") == libcachesim_faults(
        path, k, length
    )
