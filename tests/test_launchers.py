"""Hydra launcher plugins run a multirun's jobs elsewhere and give the sequential sweep's results.

The same two-job sweep (UCB1 with c = 0.5 and 1, T = 200, 2 seeds) runs through Hydra's basic
launcher (one process, jobs in turn), through `hydra-joblib-launcher` (two loky processes),
through `hydra-submitit-launcher`'s local executor (one process per job, as on a SLURM node) and
through `hydra-ray-launcher` (a local Ray instance that the launcher starts and that stops when
the command exits). Each job directory must hold the sequential run's results bit for bit:
`metrics.parquet` and `final.parquet` equal exactly, and the final numbers of `summary.json` equal
(the engine's results do not depend on the process a job runs in; only timings may differ).

The sweeps start separate processes that import JAX and compile (10-60 s each on two cores):
they are in the slow tier. The Ray test needs the `ray` extra (`uv sync --extra ray`: ~330 MB,
so not in the dev group) and is skipped, saying so, where it is not installed.

Inside a job the seed axis is sharded over the local JAX devices, by default one host device
per core (`experiments.devices`): the default, `REGRETLAB_HOST_DEVICES=auto`, four forced host
devices (`REGRETLAB_HOST_DEVICES=4`: seed counts that 4 does not divide use their largest
divisor below it that leaves two seeds per device) and two devices set by the user's
`XLA_FLAGS` give the one-device results (`REGRETLAB_HOST_DEVICES=1`) bit for bit, for UCB1 (a
run, a sweep), Thompson sampling, the streaming env's multi-round steps, whose steps reduce over
the seeds, a counter, a paging agent and fixed-budget agents (slow tier too: processes that
compile).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

SWEEP = [
    "agents=[ucb1]",
    "horizon=200",
    "seeds=2",
    "progress=false",
    "plot=false",
    "compile_cache=null",
    "agents.ucb1.c=0.5,1",
]
JOBS = ("0", "1")


def _multirun(out: Path, *launcher: str) -> Path:
    """Run the sweep with `launcher` overrides into `out` through the console script's code path
    (`python -m experiments.run`, not `uv run`: Ray would otherwise start its workers with
    `uv run` in a copy of the working directory); return `out`."""
    env = {**os.environ, "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0", "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "experiments.run", "-m", f"hydra.sweep.dir={out}", *launcher]
    r = subprocess.run(
        [*cmd, *SWEEP], capture_output=True, text=True, env=env, timeout=600, cwd=out.parent
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def _final_numbers(job: Path) -> dict:
    summary = json.loads((job / "summary.json").read_text())
    return {name: a["final"] for name, a in summary["agents"].items()}


def _assert_same_results(got: Path, want: Path) -> None:
    for job in JOBS:
        for f in ("metrics.parquet", "final.parquet"):
            pd.testing.assert_frame_equal(
                pd.read_parquet(got / job / f), pd.read_parquet(want / job / f), check_exact=True
            )
        assert _final_numbers(got / job) == _final_numbers(want / job)
        config = json.loads((got / job / "summary.json").read_text())["config"]
        assert config["agents"]["ucb1"]["c"] == (0.5, 1.0)[int(job)]


@pytest.fixture(scope="module")
def sequential(tmp_path_factory) -> Path:
    """The sweep through Hydra's basic launcher: the reference."""
    return _multirun(tmp_path_factory.mktemp("launchers") / "sequential")


@pytest.mark.slow
def test_joblib_launcher_equals_sequential(sequential, tmp_path):
    out = _multirun(tmp_path / "joblib", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    _assert_same_results(out, sequential)


@pytest.mark.slow
def test_submitit_local_launcher_equals_sequential(sequential, tmp_path):
    out = _multirun(tmp_path / "submitit", "hydra/launcher=submitit_local")
    _assert_same_results(out, sequential)
    assert (out / ".submitit").is_dir()  # the jobs went through submitit's executor


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None
    or importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
    reason="Ray launcher not installed: `uv sync --extra ray` (ray[default], ~330 MB: an extra)",
)
def test_ray_launcher_equals_sequential(sequential, tmp_path):
    out = _multirun(
        tmp_path / "ray",
        "hydra/launcher=ray",
        "+hydra.launcher.ray.init.num_cpus=2",
        "+hydra.launcher.ray.init.include_dashboard=false",
    )
    _assert_same_results(out, sequential)


def test_launcher_configs_compose():
    """Every documented launcher composes with the app's config (the plugins of the dev group are
    installed; Ray's where its extra is), and its settings are the ones the docs name."""
    from hydra import compose, initialize_config_dir

    from experiments.run import _conf_dir

    launchers = {
        "joblib": "n_jobs",
        "submitit_local": "timeout_min",
        "submitit_slurm": "partition",
    }
    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None:
        launchers["ray"] = "ray"
    with initialize_config_dir(config_dir=_conf_dir(), version_base="1.3"):
        for name, key in launchers.items():
            cfg = compose("config", overrides=[f"hydra/launcher={name}"], return_hydra_config=True)
            assert key in cfg.hydra.launcher, name


def test_unknown_launcher_is_one_line():
    from experiments.preflight import preflight
    from experiments.run import _conf_dir, prepare

    errors = preflight(["-m", "hydra/launcher=nope", "agents=[ucb1]"], _conf_dir(), prepare)
    assert len(errors) == 1 and "\n" not in errors[0]
    assert errors[0].startswith("hydra/launcher: no config 'nope'") and "joblib" in errors[0]


# --------------------------------------------------------------------------- devices
DEVICES_SCRIPT = """
import hashlib, json, sys
import jax, numpy as np
import experiments
from experiments.simulate import simulate, simulate_sweep
from bandits import BernoulliBandit
from bandits.agents import ThompsonSampling
from bandits.agents.ucb import UCB1
import bandits.streaming as bs

env = BernoulliBandit(means=(0.2, 0.5, 0.7))
params = env.default_params()

def digest(sims):
    h = hashlib.sha256()
    for s in sims:
        for k in sorted(s.curves): h.update(np.ascontiguousarray(s.curves[k]).tobytes())
        for k in sorted(s.final): h.update(np.ascontiguousarray(s.final[k]).tobytes())
    return h.hexdigest(), [s.info["seed_devices"] for s in sims]

# a shorter last chunk (1000 = 3 x 300 + 100), a sweep (config axis outside the seeds), and
# seed counts that the device count may not divide (3, 6: the largest divisor <= devices)
one = simulate(env, params, UCB1(), 1000, 4, seed=7, chunk_size=300)
sweep = simulate_sweep({"ucb1": [(env, params, UCB1(c=c)) for c in (0.5, 2.0)]}, 700, 4, 3,
                       chunk_size=300)["ucb1"]
odd = simulate(env, params, UCB1(), 500, 3, seed=1)
six = simulate(env, params, UCB1(), 300, 6, seed=2, chunk_size=200)
# a reduction over the seeds inside a step: Thompson sampling's "any lane needs the gamma
# sampler's fallback", and a multi-round chunk's "any lane still active" (`_until_idle`)
ts = simulate(env, params, ThompsonSampling(), 300, 6, seed=3)
out = {"one": digest([one]), "sweep": digest(sweep), "odd": digest([odd]), "six": digest([six]),
       "ts": digest([ts])}
if "--domains" in sys.argv:  # the other domains' step shapes, at small sizes
    from bandits.linear_bai import linear_bai
    from paging.combine import CombineRand
    from paging.env import Paging
    from privacy.continual import continual_bernoulli
    from privacy.counters import COUNTERS
    from privacy.dpbai import DPBAI
    from privacy.od_linbai import ODLinBAI

    # a counter: research noise through `experiments.prng` (Philox: mulhi inside shard_map)
    # and secure noise (a host callback per step for a device's batch)
    cenv = continual_bernoulli(0.5)
    out["counter"] = digest([simulate(cenv, cenv.default_params(), COUNTERS["binary"](rho=0.5),
                                      128, 4, seed=5, grid=[64, 128])])
    out["secure"] = digest([simulate(cenv, cenv.default_params(),
                                     COUNTERS["binary"](noise="secure", source="key"), 32, 4,
                                     seed=5, grid=[32])])
    # paging: a trace streamed per chunk, per-seed flipped predictions, a randomised agent
    penv = Paging(trace="zipf", length=300, pages=20, cache_size=4, predictions="phase",
                  flip_p=0.1)
    agent = CombineRand(algorithm="mark_and_predict", robust="marker", epsilon=0.5)
    out["paging"] = digest([simulate(penv, penv.default_params(), agent, 300, 4, seed=6,
                                     chunk_size=200)])
    # fixed budget (final answer): phase ends through cond_any, Binomial sums (cond_any /
    # cond_lanes), steps that idle once the budget is spent (multi-round: `_until_idle`)
    lenv = linear_bai("soare", omega=0.3)
    out["dpbai"] = digest([simulate(lenv, lenv.default_params(), DPBAI(epsilon=0.2), 60, 8,
                                    seed=7)])
    out["odlinbai"] = digest([simulate(lenv, lenv.default_params(), ODLinBAI(), 60, 8, seed=8)])
jax.config.update("jax_enable_x64", True)
senv = bs.streaming_bandit(K=100, horizon=10**8, memory=16, instance="clear_cut")
stream = simulate(senv, senv.default_params(), bs.StreamUniform(), 10**8, 4, seed=4)
out["stream"] = digest([stream])
print(json.dumps({"devices": len(jax.local_devices()), "set": experiments.HOST_DEVICES, **out}))
"""
SEEDS = {"one": 4, "sweep": 4, "odd": 3, "six": 6, "ts": 6, "stream": 4}  # seeds of each run
DOMAINS = {"counter": 4, "secure": 4, "paging": 4, "dpbai": 8, "odlinbai": 8}  # --domains


def _devices_run(domains: bool = False, **env_vars: str) -> dict:
    """DEVICES_SCRIPT in a fresh process with the device settings `env_vars` (and no others);
    with `domains`, also the runs of the other domains (`DOMAINS`)."""
    env = {**os.environ, "REGRETLAB_RNG": "threefry", **env_vars}
    for name in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES", "REGRETLAB_HOST_DEVICES"):
        if name not in env_vars:
            env.pop(name, None)
    env.pop("REGRETLAB_SHARD_SEEDS", None)
    r = subprocess.run(
        [sys.executable, "-c", DEVICES_SCRIPT, *(["--domains"] if domains else [])],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _assert_same_as_one_device(got: dict, single: dict, devices: int) -> None:
    """`got` (a run on `devices` devices) holds `single`'s numbers bit for bit, each run split over
    the largest divisor of its seed count that is at most `devices` and leaves each device at
    least two seeds (`simulate.seed_devices`)."""
    assert got["devices"] == devices
    runs = {**SEEDS, **DOMAINS} if "counter" in got else SEEDS
    for run, seeds in runs.items():
        n = max(d for d in range(1, devices + 1) if seeds % d == 0 and (seeds >= 2 * d or d == 1))
        sims = 2 if run == "sweep" else 1
        assert got[run] == [single[run][0], [n] * sims], run


@pytest.mark.slow
def test_seed_axis_sharded_over_host_devices_equals_one_device_bit_for_bit():
    """The seed axis split over host devices gives the one-device results bit for bit: each
    device runs its own seeds' lanes as a program of its own (`simulate._per_device`), whose
    reductions over the seeds (idle steps, batched conds) are the device's own. Checked for
    the default, ``auto`` (one device per core), four forced devices (6 seeds over 3 of them,
    4 over 2, 8 over 4; 3 on one) and a device count of the user's `XLA_FLAGS` (which the setting
    leaves alone); one device, ``auto`` and four devices also for a counter (Philox and
    host-callback noise), a paging agent and two fixed-budget agents (`DOMAINS`)."""
    from experiments.devices import available_cores, requested_host_devices

    single = _devices_run(domains=True, REGRETLAB_HOST_DEVICES="1")  # the opt-out
    assert single["devices"] == 1 and single["set"] is None
    assert all(single[run][1] == [1] * len(single[run][1]) for run in {**SEEDS, **DOMAINS})
    cores = available_cores()
    default = _devices_run()  # nothing set: `experiments.devices` decides
    assert default["set"] == requested_host_devices({})
    _assert_same_as_one_device(default, single, default["set"] or 1)
    auto = _devices_run(domains=True, REGRETLAB_HOST_DEVICES="auto")
    assert auto["set"] == (cores if cores > 1 else None)
    _assert_same_as_one_device(auto, single, cores)
    four = _devices_run(domains=True, REGRETLAB_HOST_DEVICES="4")
    assert four["set"] == 4
    _assert_same_as_one_device(four, single, 4)
    user = _devices_run(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert user["set"] is None  # the user's flag is left alone, and it holds
    _assert_same_as_one_device(user, single, 2)
