"""Mistakes stop `regretlab` before anything is compiled: exit 2, one line naming the field, no
run directory (issue 10). An agent that does not fit its env is found by tracing one whole step
and the env's final metrics abstractly (`experiments.run.check_fit`), not when compiling."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import pytest
from test_cli import cli, files_under, regretlab
from test_engine import CounterStateEnv

from experiments.config import ConfigError
from experiments.protocol import UNIFORM, Draw

MISFITS = [  # (overrides, start of the one-line error)
    (["env=streaming", "agents=[ucb1]"], "agents.ucb1: does not fit env StreamingBandit ("),
    (["env=streaming", "agents=[thompson]"], "agents.thompson: does not fit env StreamingBandit ("),
    (["env=streaming", "agents=[etc]"], "agents.etc: does not fit env StreamingBandit ("),
    (["agents=[ucb1]", "metric=faults"], "metric: 'faults' is not a metric of this env (one of: "),
    (["env=streaming", "agents=[maxsum_batch]"], "agents.maxsum_batch: Interpolation key 'env."),
    (
        ["env=streaming", "agents=[stream_uniform]", "env.memory=1000000000000"],
        "env.memory: must be an integer in [1, 2147483647] (got 1000000000000)",
    ),
    # Beta-Bernoulli Thompson sampling and Bernoulli KL-UCB need rewards in [0, 1]
    (["env=gaussian", "agents=[thompson]"], "agents.thompson: needs rewards in [0, 1] ("),
    (["env=gaussian", "agents=[kl_ucb]"], "agents.kl_ucb: needs rewards in [0, 1] ("),
]


@pytest.mark.parametrize(("overrides", "message"), MISFITS, ids=[" ".join(m[0]) for m in MISFITS])
def test_misfit_exits_with_one_line_before_compiling(overrides, message, tmp_path):
    """The first through the interpreter, the others in process (`test_cli.regretlab`)."""
    d = tmp_path / "run"
    run = cli if (overrides, message) == MISFITS[0] else lambda _, *args: regretlab(*args)
    proc = run("run", *overrides, "horizon=1000", "seeds=2", "progress=false", f"hydra.run.dir={d}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"regretlab: error: {message}"), lines
    assert not d.exists(), files_under(d)  # no run directory, not even an empty one


HYDRA_MISTAKES = [  # (override, the one-line error)
    ("horizon=abc", "horizon: must be an integer (got 'abc')"),
    ("horizon=2.5", "horizon: must be an integer (got '2.5')"),
    ("seeds=2.5", "seeds: must be an integer (got '2.5')"),
    ("x64=maybe", "x64: must be true or false (got 'maybe')"),
    ("horizn=5", "horizn: not a field of the config (did you mean horizon?)"),
    ("agents.ucb1.cc=1", "agents.ucb1.cc: not a field of the config (did you mean c?)"),
    ("env=nope", "env: no config 'nope' (one of: bernoulli, "),
    ("hydra.run.dir=", "hydra.run.dir: must name a directory (got an empty path)"),
    ("hydra.run.dir=/proc/regretlab", "hydra.run.dir: cannot write /proc/regretlab ("),
    ("horizon=[1", "overrides: cannot parse ("),
    ("horizon=1e20", "horizon: must be an integer <= 2^63 - 1 (got 100000000000000000000)"),
    ("horizon=3e9", "horizon: 3,000,000,000 rounds > 2^31 - 1 needs x64=true (64-bit round"),
    ("~horizon", "horizon: missing from the config (deleted with ~horizon?); it is required"),
    ("~env", "env: no environment chosen (deleted with ~env?); choose one, e.g. env=bernoulli"),
    ("sweep=5", "sweep: must map config fields to lists of values, e.g. sweep.agents."),
    ("sweep.agents={}", "sweep.agents: names no field to sweep, e.g. sweep.agents.FIELD=[1,2]"),
    ("+horizn=5", "horizn: not a field of the config (did you mean horizon?)"),
    ("progress=2", "progress: must be true or false (got 2)"),
    ("compile_cache=0", "compile_cache: must be a directory (e.g. ~/.cache/regretlab/jax, or"),
    ("env.means=abc", "env.means: must be a list, e.g. env.means=[...] (got 'abc')"),
]


@pytest.mark.parametrize(
    ("override", "message"), HYDRA_MISTAKES, ids=[m[0] for m in HYDRA_MISTAKES]
)
def test_hydra_mistake_exits_with_one_line(override, message, tmp_path):
    """The first through the interpreter, the others in process (`test_cli.regretlab`)."""
    d = tmp_path / "run"
    args = ["agents=[ucb1]", "progress=false"]
    if not override.startswith("hydra.run.dir"):
        args.append(f"hydra.run.dir={d}")
    run = cli if override == HYDRA_MISTAKES[0][0] else lambda _, *args: regretlab(*args)
    proc = run("run", *args, override)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"regretlab: error: {message}"), lines
    assert not d.exists(), files_under(d)  # no run directory, not even an empty one


def test_unknown_agent_lists_the_agents_that_exist(tmp_path):
    proc = regretlab("agents=[nope]", f"hydra.run.dir={tmp_path / 'run'}")  # in process
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert (
        line.startswith("regretlab: error: agents: no config 'nope' (one of: ") and "ucb1" in line
    )


def test_exact_integer_in_scientific_notation_is_an_integer(monkeypatch):
    """In process: the console script's check hands Hydra `horizon=300`, and the experiment
    `main` prepares from it runs 300 rounds (the run itself: tests/test_cli.py)."""
    from hydra import compose, initialize_config_dir

    from experiments.preflight import run_checked
    from experiments.run import _conf_dir, prepare

    monkeypatch.setattr(sys, "argv", sys.argv)  # run_checked rewrites it; restored after
    handed: list[list[str]] = []
    argv = ["regretlab", "agents=[ucb1]", "horizon=3e2", "seeds=4", "compile_cache=null"]
    run_checked(lambda: handed.append(sys.argv[1:]), _conf_dir(), prepare, argv)
    (args,) = handed
    assert "horizon=300" in args
    with initialize_config_dir(config_dir=_conf_dir(), version_base="1.3"):
        cfg = compose("config", overrides=args)
    exp = prepare(cfg, args)
    assert exp.horizon == 300 and type(exp.horizon) is int and exp.seeds == 4


def test_multirun_with_bad_jobs_refuses_before_any_job_runs(tmp_path):
    """Every job is validated up front; all bad ones are listed (one line each), none runs."""
    d = tmp_path / "sweep"
    proc = regretlab("-m", "env.K=5,1,10", "agents=[ucb1]", "agents.ucb1.c=1,-2", "horizon=300",
                     "seeds=2", "progress=false", f"hydra.sweep.dir={d}")  # fmt: skip  # in process
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert [ln.split(":")[2].strip() for ln in lines] == ["job 1 (env.K=5 agents.ucb1.c=-2)",
        "job 2 (env.K=1 agents.ucb1.c=1)", "job 3 (env.K=1 agents.ucb1.c=-2)",
        "job 5 (env.K=10 agents.ucb1.c=-2)"]  # fmt: skip
    assert all(ln.startswith("regretlab: error: job ") for ln in lines)
    assert not d.exists(), files_under(d)  # no run directory, not even an empty one


REFUSED = [  # (arguments, the one-line error): names the field to change
    (  # steps = horizon x H: beyond int32 without x64 (once a ValueError from the engine)
        ["env=latent_mdp", "agents=[latent_random]", "horizon=1000000000"],
        "horizon: 1,000,000,000 episodes x 5 steps = 5,000,000,000 steps > 2^31 - 1 needs x64=true",
    ),
    (  # the trace is too short for the horizon: horizon or env.length, not agents.lru.horizon
        ["env=paging", "agents=[lru]", "env.length=50", "horizon=100"],
        "horizon: 100 requests > the trace's 50 (set horizon <= env.length)",
    ),
    (  # the env refuses the agent: the agent does not fit it, not "agents.ucb1.env"
        ["env=linear_bai", "agents=[ucb1]"],
        "agents.ucb1: does not fit env LinearBAI (fixed-budget BAI needs an agent whose output()",
    ),
    (["-m", "agents=[ucb1]", "env.K=range(1,1)"], "env.K: range(1,1) is a sweep of no value"),
    (["-m", "agents=[ucb1]", "env.K=glob(*)"], "env.K: glob(*) is a sweep of no value: the"),
    (["-m", "agents=[ucb1]", "progress=true,0"], "progress: must be true or false (got 0)"),
]


@pytest.mark.parametrize(("args", "message"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_refused_with_one_line_naming_the_field(args, message, tmp_path):
    """In process: exit 2, one line, no run (or sweep) directory."""
    d = tmp_path / "run"
    where = "hydra.sweep.dir" if "-m" in args else "hydra.run.dir"
    proc = regretlab(*args, "seeds=2", "progress=false", f"{where}={d}")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"regretlab: error: {message}"), lines
    assert not d.exists(), files_under(d)


def test_exact_integers_in_scientific_notation_for_every_integer_field():
    """An env's or agent's parameter annotated ``int`` by its target takes ``1e2`` as 100 (as
    the top-level integer fields do); a float parameter keeps its float."""
    from experiments.preflight import int_fields, integer_literals
    from experiments.run import _conf_dir

    args = ["agents=[ucb1,etc]", "env.K=1e2", "agents.etc.m=2e1", "agents.ucb1.c=1e2"]
    out = integer_literals(args, int_fields(args, _conf_dir()))
    assert out == ["agents=[ucb1,etc]", "env.K=100", "agents.etc.m=20", "agents.ucb1.c=1e2"]
    assert integer_literals(["-m", "env.K=1e1,2e1"], int_fields(["-m"], _conf_dir())) == [
        "-m",
        "env.K=10,20",
    ]


def _finished_run(d: Path, config: dict | None = None) -> dict[Path, bytes]:
    """A directory standing for a finished run (what `results.is_complete` looks at), with
    Hydra's files; returns every file's bytes."""
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text("horizon: 300\n")
    (d / ".hydra" / "hydra.yaml").write_text("hydra: {}\n")
    (d / ".hydra" / "overrides.yaml").write_text("- agents=[ucb1]\n")
    (d / "regretlab.log").write_text("[...] compiling ucb1\n")
    (d / "summary.json").write_text(json.dumps({"config": config or {"horizon": 300}}))
    for name in ("metrics.parquet", "final.parquet", "regret.png"):
        (d / name).write_bytes(b"results")
    return {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "args",
    [
        ["horizon=-5"],  # refused by `main` after Hydra wrote .hydra/ and opened the log
        ["agents=[ucb1]", "sweep.agents.ucb1.c=[1,-1]"],  # the root of an in-program sweep
        ["agents=[ucb1]", "horizn=5"],  # refused before Hydra runs
    ],
)
def test_a_refused_command_leaves_a_finished_run_as_it_was(args, tmp_path):
    """Hydra overwrites .hydra/ before `main` validates: a refused command puts back what the
    directory held (`preflight.protect_run_dir`), never deleting a finished run's metadata."""
    d = tmp_path / "run"
    before = _finished_run(d)
    proc = regretlab(*args, "progress=false", f"hydra.run.dir={d}")  # in process
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before


def test_without_a_kept_copy_a_run_directory_keeps_its_files(tmp_path):
    """`main` run other than by the console script (no copy kept): Hydra's files are removed
    only from a directory that holds nothing else."""
    from experiments.run import _discard_run_dir

    d = tmp_path / "run"
    before = _finished_run(d)
    _discard_run_dir(d)
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before
    fresh = tmp_path / "fresh"
    (fresh / ".hydra").mkdir(parents=True)
    (fresh / ".hydra" / "config.yaml").write_text("{}")
    (fresh / "regretlab.log").write_text("")
    _discard_run_dir(fresh)
    assert not fresh.exists()


def test_a_multirun_into_the_directory_of_another_sweep_is_refused(tmp_path):
    """Job 0 of another config would be replaced and job 2 left to be tabulated with this
    sweep's: refused before any job runs, one line, nothing changed."""
    d = tmp_path / "sweep"
    before = {
        **_finished_run(d / "0", {"horizon": 300, "env": {"K": 7}}),
        **_finished_run(d / "2", {"horizon": 300}),
    }
    proc = regretlab("-m", "agents=[ucb1]", "env.K=3,4", "horizon=300", "seeds=2",
                     "progress=false", f"hydra.sweep.dir={d}")  # fmt: skip  # in process
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"regretlab: error: hydra.sweep.dir: {d} holds another command's")
    assert "job 0: a finished run of another config (differs in: " in line
    assert "job 2, beyond this sweep's 2 jobs" in line and "use a new directory" in line
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in d.iterdir()) == ["0", "2"]


BAD_ENVIRONMENT = [  # (variable, value): each refused in one line naming it and what it allows
    ("REGRETLAB_RNG", "bogus"),
    ("REGRETLAB_HOST_DEVICES", "abc"),
    ("REGRETLAB_LOOPS", "gpu"),
    ("REGRETLAB_LANE_BLOCK", "-1"),
    ("REGRETLAB_SCAN_UNROLL", "x"),
    ("REGRETLAB_SHARD_SEEDS", "maybe"),  # once taken silently as "on"
]


@pytest.mark.parametrize(("name", "value"), BAD_ENVIRONMENT)
def test_a_bad_environment_variable_is_one_line_exit_2(name, value, tmp_path):
    """Through the interpreter: some are read when the package is imported, before the
    command's own code runs (`experiments.devices.refuse_bad_environment`)."""
    d = tmp_path / "run"
    proc = cli("run", "agents=[ucb1]", "horizon=300", "seeds=2", "progress=false",
               f"hydra.run.dir={d}", extra_env={name: value})  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"regretlab: error: {name}: must be "), lines
    assert lines[0].endswith(f"(got {value!r})")
    assert not d.exists()


def test_a_bad_environment_variable_stops_reproduce_too():
    proc = cli("reproduce", "--list", extra_env={"REGRETLAB_RNG": "bogus"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "regretlab-reproduce: error: REGRETLAB_RNG: must be one of threefry,"
        " threefry-partitionable (unset: threefry) (got 'bogus')"
    ]


@pytest.mark.parametrize(
    ("sigma", "message"),
    [
        ("1e300", "env: parameter sigma is not finite in float32"),  # refused before compiling
        # finite in float32, but rewards of ~1e38 overflow the float32 regret sums: NaN
        ("3e38", "agents.ucb1: final realized_regret is nan for seed 0"),
    ],
)
def test_non_finite_values_are_errors_not_numbers(sigma, message, tmp_path):
    """A parameter that overflows its dtype, or a final metric that is NaN or infinite, fails
    with one line (naming the parameter, or the agent, metric and seed); no run directory.
    The one refused before compiling runs in process (`test_cli.regretlab`)."""
    d = tmp_path / "run"
    run = (lambda _, *args: regretlab(*args)) if sigma == "1e300" else cli
    proc = run("run", "agents=[ucb1]", "env=gaussian", f"env.sigma={sigma}", "horizon=300",
               "seeds=2", "progress=false", f"hydra.run.dir={d}")  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"regretlab: error: {message}"), lines
    assert not d.exists(), files_under(d)  # no run directory, not even an empty one


# In process: the whole validation (compose, then `prepare`, which builds env and agents and
# traces their step) of a one-job multirun, through `preflight`; each bad input gives exactly
# one line, naming the field first.
INPUTS = [
    ("env.K", ["env.K=0"]),
    ("env.K", ["env.K=abc"]),
    ("env.means", ["env.means=[0.5,1.5]"]),
    ("env.means", ["env.means=[]"]),
    ("env.sigma", ["env=gaussian", "env.sigma=0"]),
    ("env.sigma", ["env=gaussian", "env.sigma=-1"]),
    ("agents.ucb1.c", ["agents.ucb1.c=-1"]),
    ("agents.ucb1.c", ["agents.ucb1.c=abc"]),
    (
        "agents.epsilon_greedy.epsilon",
        ["agents=[epsilon_greedy]", "agents.epsilon_greedy.epsilon=2"],
    ),
    ("agents.etc.m", ["agents=[etc]", "agents.etc.m=0"]),
    ("agents.etc.m", ["agents=[etc]", "agents.etc.m=2.5"]),
    ("agents.thompson.spares", ["agents=[thompson]", "agents.thompson.spares=-1"]),
    ("agents.kl_ucb.c", ["agents=[kl_ucb]", "agents.kl_ucb.c=-1"]),
    ("horizon", ["horizon=0"]),
    ("seeds", ["seeds=-1"]),
    ("seed", ["seed=-1"]),
    ("record.points", ["record.points=1"]),
    ("record.grid", ["record.grid=foo"]),
    ("chunk_size", ["chunk_size=0"]),
    ("chunk_size", ["chunk_size=150"]),
    ("reference", ["reference=nope"]),
    ("horizon", ["horizon=3000000000"]),
    ("agents", ["agents=[]"]),
    ("env.K", ["env=streaming", "agents=[stream_uniform]", "env.K=1"]),
    ("env.memory", ["env=streaming", "agents=[stream_uniform]", "env.memory=0"]),
    ("env.mode", ["env=streaming", "agents=[stream_uniform]", "env.mode=foo"]),
    ("env.instance", ["env=streaming", "agents=[stream_uniform]", "env.instance=foo"]),
    ("env.p", ["env=continual_bernoulli", "agents=[counter_tree]", "env.p=2"]),
    ("env.d", ["env=continual_bernoulli", "agents=[counter_tree]", "env.d=0"]),
    (
        "agents.counter_tree.rho",
        ["env=continual_bernoulli", "agents=[counter_tree]", "agents.counter_tree.rho=0"],
    ),
    (
        "agents.counter_tree.neighbouring",
        [
            "env=continual_bernoulli",
            "agents=[counter_tree]",
            "agents.counter_tree.neighbouring=foo",
        ],
    ),
    (
        "agents.counter_tree.noise",
        ["env=continual_bernoulli", "agents=[counter_tree]", "agents.counter_tree.noise=foo"],
    ),
    (
        "agents.counter_blt.rho",
        ["env=continual_bernoulli", "agents=[counter_blt]", "agents.counter_blt.rho=-1"],
    ),
    ("env.problem", ["env=maxsum_adaptive", "agents=[maxsum_batch]", "env.problem=foo"]),
    ("env.d", ["env=maxsum_adaptive", "agents=[maxsum_batch]", "env.d=0"]),
    ("agents.ucb1", ["env=continual_bernoulli"]),
    ("agents.counter_tree", ["agents=[counter_tree]"]),
    ("horizon", ["~horizon"]),
    ("env", ["~env"]),
    ("horizon", ["env=latent_mdp", "agents=[latent_random]", "horizon=1000000000"]),
    ("horizon", ["env=paging", "agents=[lru]", "env.length=50", "horizon=100"]),
    ("agents.ucb1", ["env=linear_bai"]),
    ("env.means", ["env.means=abc"]),
    ("env.gap", ["env.generator=gap", "env.gap=2"]),
    ("env.K", ["env.K=range(1,1)"]),
    ("env.K", ["env.K=glob(*)"]),
    ("progress", ["progress=2"]),
    ("horizn", ["+horizn=5"]),
    ("compile_cache", ["compile_cache=0"]),
    ("sweep", ["sweep=5"]),
    ("sweep.agents", ["sweep.agents={}"]),
]


@pytest.mark.parametrize(("field", "overrides"), INPUTS, ids=[" ".join(o) for _, o in INPUTS])
def test_every_input_is_one_line_naming_its_field(field, overrides):
    from experiments.preflight import preflight
    from experiments.run import _conf_dir, prepare

    args = ["-m", "agents=[ucb1]", "horizon=1000", "seeds=2"]
    keys = {o.split("=")[0].lstrip("+~") for o in overrides}
    args = [a for a in args if a.split("=")[0] not in keys]
    errors = preflight([*args, *overrides], _conf_dir(), prepare)
    assert len(errors) == 1 and errors[0].startswith(f"{field}: "), errors


# --------------------------------------------------------------------------- a user's own env
@dataclass(frozen=True)
class _KeyedCoins(CounterStateEnv):
    """A user's env written gymnax-style (`step(key, ...)` sampling with jax.random): the engine
    passes a dict of pre-drawn inputs, so its own code fails."""

    p: tuple = (0.2, 0.8)

    def default_params(self):
        return jnp.asarray(self.p)

    def spec(self, params, horizon):
        return _Spec(len(self.p), horizon)

    def step(self, key, state, action, params):
        r = jax.random.bernoulli(key, params[action]).astype(jnp.float32)
        return state + 1, r, {"regret": params.max() - params[action]}


class _Spec(NamedTuple):
    num_arms: int
    horizon: int


@dataclass(frozen=True)
class _FloatMetricCoins(_KeyedCoins):
    """Samples from the engine's draws and returns its metric as a Python float."""

    def randomness(self, params, action):
        return {"u": Draw(UNIFORM)}

    def step(self, rng, state, action, params):
        return state + 1, (rng["u"] < params[action]).astype(jnp.float32), {"regret": 0.1}


def test_a_misfit_says_where_it_was_raised():
    """The one line says where the failure was raised (the innermost frame outside JAX and the
    engine): a user's env failing in its own code is then visible as such, not only as the
    agent not fitting it; a Python number as a metric is taken as a scalar (it failed on
    `.astype`)."""
    from bandits.agents import UCB1
    from experiments.run import check_fit

    with pytest.raises(ConfigError) as e:
        check_fit(_KeyedCoins(), _KeyedCoins().default_params(), UCB1(), 100, "agents.ucb1")
    msg = str(e.value)
    assert msg.startswith("agents.ucb1: does not fit env _KeyedCoins (TypeError"), msg
    assert "raised in tests/test_cli_errors.py:" in msg and "(step))" in msg, msg
    env = _FloatMetricCoins()
    assert "regret" in check_fit(env, env.default_params(), UCB1(), 100, "agents.ucb1")
