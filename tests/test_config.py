"""The Hydra configuration: every config file composes and instantiates; bad input fails early.

Configs are composed with Hydra's compose API on the repository's conf/ directory and validated
and instantiated by `experiments.run.prepare`, the function the command line runs; nothing is
simulated here. Expected values come from the YAML files themselves (read with OmegaConf, not
through Hydra's composition) or from the closed forms the issue states.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import jax
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from experiments.config import ConfigError
from experiments.run import prepare  # importing it registers the `regretlab_schema` config

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
EXAMPLES = ROOT / "examples"
ENVS = sorted(p.stem for p in (CONF / "env").glob("*.yaml"))
AGENTS = sorted(p.stem for p in (CONF / "agents").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
DEFAULT_AGENTS = ["ucb1", "kl_ucb", "thompson", "epsilon_greedy", "etc"]  # the issue's list


@pytest.fixture(autouse=True)
def hydra_conf():
    """Hydra initialised on conf/; cleared afterwards. Restores JAX's x64 flag, which
    `prepare` sets from the config."""
    x64 = jax.config.jax_enable_x64
    GlobalHydra.instance().clear()
    initialize_config_dir(config_dir=str(CONF), version_base="1.3")
    yield
    GlobalHydra.instance().clear()
    jax.config.update("jax_enable_x64", x64)


def build(overrides: list[str]):
    """Compose the app's config with `overrides` and validate + instantiate it like the CLI."""
    return prepare(compose(config_name="config", overrides=overrides), overrides)


def target_class(target: str):
    """The object a `_target_` string names, imported directly (not through Hydra)."""
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


def yaml_fields(path: Path) -> dict:
    """A config file's literal keys other than `_target_` and `defaults`, read without Hydra.

    Interpolations (``${env.problem}``) name other nodes; they are left to the compose tests.
    """
    node = OmegaConf.to_container(OmegaConf.load(path))
    return {
        k: v
        for k, v in node.items()
        if k not in ("_target_", "defaults") and not (isinstance(v, str) and v.startswith("${"))
    }


def test_default_config_is_the_issues_experiment():
    cfg = compose(config_name="config")
    assert list(cfg.agents) == DEFAULT_AGENTS
    assert (cfg.horizon, cfg.seeds) == (10_000, 100)
    assert cfg.env._target_ == "bandits.envs.bernoulli_bandit"


# Extra overrides an env needs whatever the agent: continual_fixed's stream has 8 items, so T <= 8.
ENV_NEEDS = {"continual_fixed": ["horizon=8"]}
# ... and an agent needs whatever the env: a paging agent reads one kind of prediction, which
# env=paging must give (it refuses the others in one line).
_READS = {
    "discard": ("follow_discard_bits", "mark0"),
    "phase": ("mark_and_predict",),
    "next_arrival": ("blind_oracle", "predictive_marker", "lmarker", "lnonmarker", "trust_doubt"),
}
AGENT_NEEDS = {
    a: [f"env.predictions={kind}"]
    for kind, stems in _READS.items()
    for a in AGENTS
    if a.startswith(stems)
}
# the model-optimistic solver serves tiny instances only (its own one-line refusal otherwise)
AGENT_NEEDS["latent_model_optimistic"] = ["env.num_states=2", "env.episode_length=3"]


# Speed only (each refused pairing traces a whole step): the searches below try an env's own
# family of agents first (agent name prefix -> env name prefix), then every pairing in file order.
# paging policies (each would otherwise be tried on every env before paging: ~0.4 s a try)
PAGING_POLICIES = ("belady", "blind_oracle", "fifo", "follow_discard", "lfu", "lmarker")
PAGING_POLICIES += ("lnonmarker", "lru", "mark", "predictive_marker", "trust_doubt")
FAMILIES = {
    "stream_": "streaming",
    "maxsum_": "maxsum_",
    "counter_": "continual_",
    "latent_": "latent_",
    "od_linbai": "linear_bai",
    "dp_od_linbai": "linear_bai",
    "ucb1": ("bernoulli", "gaussian"),
    "context_oracle": "latent_mdp",
    "ucbvi_": "latent_mdp",
    "dp_bai": "linear_bai",
    **dict.fromkeys(PAGING_POLICIES, "paging"),
}


def family_first(names: list[str], of) -> list[str]:
    """`names` (agents or envs) with those for which `of(name)` is an (env, agent) pairing of
    one family moved to the front; the order is otherwise kept."""

    def same_family(env: str, agent: str) -> bool:
        return any(agent.startswith(a) and env.startswith(e) for a, e in FAMILIES.items())

    return sorted(names, key=lambda n: not same_family(*of(n)))


def first_working(pairs: list[list[str]]):
    """`(overrides, Experiment)` of the first override list that validates, else AssertionError
    listing every one-line error (an env and an agent are only checked together, by `prepare`)."""
    errors = []
    for overrides in pairs:
        try:
            return overrides, build(overrides)
        except Exception as e:  # a search; an agent-env mismatch is tested on its own below
            errors.append(f"{' '.join(overrides)}: {type(e).__name__}: {e}")
    raise AssertionError("no pairing validates:\n" + "\n".join(errors))


@pytest.mark.parametrize("name", ENVS)
def test_every_env_config_instantiates(name: str):
    path = CONF / "env" / f"{name}.yaml"
    agents = family_first(AGENTS, lambda a: (name, a))
    pairs = [[f"env={name}", f"agents=[{a}]", *ENV_NEEDS.get(name, [])] for a in agents]
    overrides, exp = first_working(pairs)
    composed = OmegaConf.to_container(compose("config", overrides=overrides).env, resolve=True)
    fields = yaml_fields(path)
    for key, value in fields.items():  # the file's literal values reach the composed config
        if not (isinstance(value, str) and value.startswith("${")):
            assert composed[key] == value, key
    make = target_class(OmegaConf.load(path)._target_)
    assert exp.env == make(**{k: v for k, v in composed.items() if k != "_target_"})
    if fields.get("generator") == "linspace" and fields.get("means") is None:
        # the means are numpy's linspace(low, high, K), to float32 rounding
        want = np.linspace(fields["low"], fields["high"], fields["K"])
        np.testing.assert_allclose(np.asarray(exp.params.means), want, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(exp.params.gaps), want.max() - want, atol=1e-6)


@pytest.mark.parametrize("name", AGENTS)
def test_every_agent_config_instantiates(name: str):
    """With the first env config it works with (streaming agents need env=streaming, ...)."""
    path = CONF / "agents" / f"{name}.yaml"
    assert path.read_text().startswith(f"# @package agents.{name}\n")
    needs = AGENT_NEEDS.get(name, [])
    _, exp = first_working(
        [
            [f"env={e}", f"agents=[{name}]", *ENV_NEEDS.get(e, []), *needs]
            for e in family_first(ENVS, lambda e: (e, name))
        ]
    )
    assert list(exp.agents) == [name]
    agent = exp.agents[name]
    make = target_class(OmegaConf.load(path)._target_)
    fields = yaml_fields(path)
    if isinstance(make, type):
        assert isinstance(agent, make)
        for key, value in fields.items():
            assert getattr(agent, key) == value, key
    else:  # a factory (e.g. a counter = strategy + noise backend): same object from the fields
        assert agent == make(**fields)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_config_instantiates(name: str):
    node = OmegaConf.load(CONF / "experiment" / f"{name}.yaml")
    exp = build([f"experiment={name}"])
    for key in ("horizon", "seeds"):
        if key in node:
            assert getattr(exp, key) == node[key]
    if "env" in node and "means" in node.env:
        np.testing.assert_allclose(np.asarray(exp.params.means), list(node.env.means), rtol=1e-6)


def test_default_experiment_instantiates_all_five_agents():
    exp = build([])
    assert list(exp.agents) == DEFAULT_AGENTS
    np.testing.assert_allclose(np.asarray(exp.params.means), np.linspace(0.1, 0.9, 10), rtol=1e-6)


def test_agents_list_composes_each_under_its_own_name():
    cfg = compose(config_name="config", overrides=["agents=[ucb1,thompson]"])
    assert list(cfg.agents) == ["ucb1", "thompson"]
    for name in ("ucb1", "thompson"):
        want = OmegaConf.load(CONF / "agents" / f"{name}.yaml")
        assert cfg.agents[name]._target_ == want._target_


def test_agent_parameter_override_reaches_the_instance():
    exp = build(["agents=[ucb1]", "agents.ucb1.c=0.5"])
    assert exp.agents["ucb1"].c == 0.5


def test_unknown_agent_is_hydras_missing_config_error():
    with pytest.raises(MissingConfigException, match="Could not load 'agents/nope'"):
        compose(config_name="config", overrides=["agents=[nope]"])


def test_explicit_means_define_the_number_of_arms():
    exp = build(["env=bernoulli", "env.means=[0.5,0.6]", "agents=[ucb1]"])
    np.testing.assert_allclose(np.asarray(exp.params.means), [0.5, 0.6], rtol=1e-6)
    assert exp.env.spec(exp.params, exp.horizon).num_arms == 2


BAD_INPUT = [  # (override, field the one-line message must start with)
    ("env.K=0", "env.K"),
    ("env.means=[0.5,1.5]", "env.means"),
    ("env.means=[-0.1,0.5]", "env.means"),
    ("horizon=-5", "horizon"),
    ("seeds=0", "seeds"),
    ("record.grid=foo", "record.grid"),
    ("chunk_size=150", "chunk_size"),
    ("agents.ucb1.c=-1", "agents.ucb1.c"),
    ("env.means=abc", "env.means"),  # once: each character checked, "(got 'a')"
    ("compile_cache=0", "compile_cache"),  # once: a cache folder named "0"
    ("compile_cache=true", "compile_cache"),
    ("compile_cache=1.5", "compile_cache"),
]


@pytest.mark.parametrize(("override", "field"), BAD_INPUT)
def test_bad_input_is_one_line_naming_field_and_allowed_values(override: str, field: str):
    with pytest.raises(ConfigError) as info:
        build(["env=bernoulli", "agents=[ucb1]", override])
    msg = str(info.value)
    assert "\n" not in msg
    # "field: must be <what is allowed> (got <value>)", the form of experiments.config's checks
    assert re.fullmatch(rf"{re.escape(field)}: must be .+ \(got .+\)", msg), msg


# ------------------------------------------------------------------ a user's own agent
@pytest.fixture
def on_path(monkeypatch):
    """examples/ on sys.path, as PYTHONPATH=examples does for the command line."""
    monkeypatch.syspath_prepend(str(EXAMPLES))


def test_own_agent_from_a_yaml_on_the_search_path(on_path):
    overrides = [f"hydra.searchpath=[file://{EXAMPLES / 'conf'}]", "agents=[ucb1,my_agent]"]
    exp = build(overrides)
    assert list(exp.agents) == ["ucb1", "my_agent"]
    from my_agent import SoftmaxExploration

    assert isinstance(exp.agents["my_agent"], SoftmaxExploration)
    assert exp.agents["my_agent"].tau == yaml_fields(EXAMPLES / "conf/agents/my_agent.yaml")["tau"]


def test_own_agent_without_yaml(on_path):
    exp = build(
        [
            "agents=[ucb1]",
            "+agents.mine._target_=my_agent.SoftmaxExploration",
            "+agents.mine.tau=0.25",
        ]
    )
    from my_agent import SoftmaxExploration

    assert list(exp.agents) == ["ucb1", "mine"]
    assert exp.agents["mine"] == SoftmaxExploration(tau=0.25)


def test_own_agent_bad_parameter_is_one_line(on_path):
    with pytest.raises(ConfigError, match=r"^agents\.mine\.tau: must be .+ \(got -1\)$"):
        build(
            [
                "agents=[ucb1]",
                "+agents.mine._target_=my_agent.SoftmaxExploration",
                "+agents.mine.tau=-1",
            ]
        )


def test_own_agent_off_the_path_names_the_missing_module():
    """Without PYTHONPATH the one line must say which module is missing (see the report: the
    engine currently keeps only the first line of Hydra's message, which ends in a colon)."""
    with pytest.raises(ConfigError) as info:
        build(["agents=[ucb1]", "+agents.mine._target_=my_agent_not_on_path.Agent"])
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("agents.mine: ")
    assert "No module named 'my_agent_not_on_path'" in msg, msg


def test_agent_for_another_env_is_a_one_line_config_error():
    """A privacy counter on a bandit env must fail validation in one line, not crash in JAX
    tracing with AttributeError (see the report for the fix in `prepare`)."""
    with pytest.raises(ConfigError, match=r"^agents\.counter_tree[.:]") as info:
        build(["env=bernoulli", "agents=[counter_tree]"])
    assert "\n" not in str(info.value)


def test_compile_cache_that_cannot_be_created_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"^compile_cache: cannot create .+a_file/cache"):
        build([f"compile_cache={blocker}/cache", "horizon=100", "seeds=2", "agents=[ucb1]"])


@pytest.mark.parametrize("off", ["false", "False", "null", "off"])
def test_compile_cache_false_is_off(off, tmp_path, monkeypatch):
    """`compile_cache=false` reaches the str field as "False": off, never a directory "False"."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    before = jax.config.jax_compilation_cache_dir
    build([f"compile_cache={off}", "horizon=100", "seeds=2", "agents=[ucb1]"])
    assert jax.config.jax_compilation_cache_dir == before
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("agent", "kind"), [("mark_and_predict", "discard"), ("lmarker", "none")])
def test_paging_agent_fed_the_wrong_predictions_is_one_line(agent, kind):
    """Mark&Predict run on discard bits would run and mislead: refused, naming what it needs."""
    with pytest.raises(ConfigError, match=rf"^agents\.{agent}: needs env\.predictions=") as info:
        build(["env=paging", f"agents=[{agent}]", f"env.predictions={kind}", "horizon=100"])
    assert "\n" not in str(info.value)
