"""The latent-MDP environment with context in hindsight, on the engine's episodic shape.

Model (Kwon, Efroni, Caramanis & Mannor, NeurIPS 2021, §2; Zhou, Wang & Du, "Horizon-Free and
Variance-Dependent Reinforcement Learning for Latent Markov Decision Processes", ICML 2023,
§3.1): M MDPs share S states, A actions and the horizon H; context m has weight w_m, initial
distribution ν_m, transitions P_m and a deterministic reward R_m(s, a) in [0, 1] with every
episode's total <= 1. Episode k (Zhou, Wang & Du, §3.1, "context in hindsight"):

1. nature draws m ~ w and s_1 ~ ν_m; m is hidden;
2. for h = 1..H the agent observes s_h, plays a_h, receives r_h = R_m(s_h, a_h) and the state
   moves to s_{h+1} ~ P_m(·|s_h, a_h);
3. after step H the context m is revealed (``EpisodeFeedback.revealed`` of the last step; -1 on
   every other step, so an agent cannot read it earlier).

`EpisodicEnv` (experiments/episodic.py) owns the step counter, the reset and the revelation;
this file writes the model's reset, observation and step. ``horizon`` of a run counts episodes K.

Observation: ``LatentObs(state, context)``. ``context`` is -1, except with ``oracle_view=true``
where it carries the episode's context from the first step: a privileged channel read only by
the reference agent `rl.baselines.ContextOracle`, present because all agents of a run share one
env (like the streaming env's ``oracle_gap``). It is **off by default**; the ``latent_mdp`` env
config turns it on only when ``agents=[context_oracle, ...]`` is selected (the oracle's config
asks for it), and the oracle refuses an env without it in one line. Every other agent ignores
the channel; the tests check that the random and the Bayes-optimal agents' runs do not change
with ``oracle_view=true``.

Feedback: ``LatentFeedback(reward, next_state)``. Metrics (per-step increments the engine sums):

* ``pseudo_regret`` (the primary metric): V* − V^{π_k} at the last step of episode k, π_k the
  policy the agent played in the episode, valued exactly in the true LMDP by the engine's agent
  hook `LatentMDP.agent_metrics` (it sees the agent's state); V* the exact optimal value over
  history-dependent policies (`rl.planning`, computed when the env is built);
* ``regret``: V* − (the episode's realised return), whose expectation is the pseudo-regret for
  a policy fixed during the episode (their difference is a martingale);
* ``reward`` per step.

For agents that declare the exact value of their fixed policy (``policy_value(spec)``: the
random, the Bayes-optimal and the context-oracle references) the env's ``oracle`` hook also gives
the exact expected regret per episode, printed beside the run's mean as its self-check. The
measurement wrapper `rl.optimistic.PseudoRegret` records the same per-episode values as a curve
(the reproduction's slopes; it equals the engine's metric, tested).

Instances (`rl.instances`): ``garnet`` (Γ = ``degree``), ``lattice`` (M = 2), ``interpolation``
(``epsilon``; Γ = ``degree`` + 1 when ε > 0: the deterministic successor plus the garnet part's
``degree``) or ``file`` (an .npz at ``path`` with weights, init, transitions, rewards). Use
`LatentMDP.from_model` for arrays built in Python. A field the chosen instance does not read
(``rho`` for a garnet, the sizes for a file or a model, ...) must stay at its default: a
non-default value is refused in one line rather than silently ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.config import ConfigError, check_choice, check_int
from experiments.episodic import EpisodicEnv
from experiments.lift import freeze
from experiments.protocol import UNIFORM, Draw, MetricInfo
from rl import instances
from rl.planning import MAX_NODES, PLANNERS, LatentModel, check_model, solve

KINDS = (*instances.INSTANCES, "file", "given")
# the instance fields each kind reads (the others must keep their defaults: `LatentMDP`)
SIZES = ("num_contexts", "num_states", "num_actions", "episode_length")
READS = {
    "garnet": {*SIZES, "degree", "weights", "instance_seed"},
    "lattice": {*SIZES, "rho", "informative", "weights", "instance_seed"},
    "interpolation": {*SIZES, "degree", "epsilon", "weights", "instance_seed"},
    "file": {"episode_length", "path"},
    "given": set(),
}
INSTANCE_FIELDS = set().union(*READS.values())


class LatentParams(NamedTuple):
    weights: jax.Array  # (M,)
    init: jax.Array  # (M, S)
    transitions: jax.Array  # (M, S, A, S)
    rewards: jax.Array  # (M, S, A)
    weights_cdf: jax.Array  # (M,) cumulative, last entry exactly 1
    init_cdf: jax.Array  # (M, S)
    transitions_cdf: jax.Array  # (M, S, A, S)
    v_star: jax.Array  # exact V*


class LatentState(NamedTuple):
    context: jax.Array  # hidden m
    s: jax.Array  # current state
    t: jax.Array  # steps taken in this episode (H after the last one)
    ret: jax.Array  # the episode's return so far


class LatentObs(NamedTuple):
    state: jax.Array  # s_h
    context: jax.Array  # -1, or m with oracle_view (read only by the context oracle)


class LatentFeedback(NamedTuple):
    reward: jax.Array  # r_h = R_m(s_h, a_h)
    next_state: jax.Array  # s_{h+1}


class LatentSpec(NamedTuple):
    """Static facts for agents. Learners may use the sizes; `model` (the true LMDP) is for the
    reference agents only (random, Bayes-optimal, context oracle)."""

    num_contexts: int
    num_states: int
    num_actions: int
    episode_length: int
    oracle_view: bool
    v_star: float
    model: LatentModel


def cdf(p: np.ndarray) -> np.ndarray:
    """Cumulative sums along the last axis with every entry from the last positive one on set
    to exactly 1, so that inversion of a uniform in [0, 1) never picks a zero-probability
    entry."""
    c = np.cumsum(p, -1)
    last = p.shape[-1] - 1 - np.argmax((p > 0)[..., ::-1], axis=-1)
    idx = np.arange(p.shape[-1])
    return np.where(idx >= last[..., None], 1.0, np.minimum(c, 1.0))


def sample(cdf_row: jax.Array, u: jax.Array) -> jax.Array:
    """Inversion: the first index whose cumulative probability exceeds u."""
    i = jnp.sum(cdf_row <= u).astype(jnp.result_type(int))
    return jnp.minimum(i, cdf_row.shape[-1] - 1)


@dataclass(frozen=True, eq=False)
class LatentMDP(EpisodicEnv):
    """A latent MDP with context in hindsight (see the module docstring)."""

    instance: str = "garnet"  # garnet | lattice | interpolation | file
    num_contexts: int = 2  # M (lattice: 2)
    num_states: int = 4  # S
    num_actions: int = 2  # A
    episode_length: int = 5  # H
    degree: int = 2  # garnet: Γ; interpolation: the garnet part's degree (Γ = degree + 1, ε > 0)
    rho: float = 3.0  # lattice: likelihood ratio
    informative: float = 1.0  # lattice: fraction of informative (s, a)
    epsilon: float = 0.1  # interpolation: 0 = deterministic
    weights: tuple[float, ...] | None = None  # context weights (default uniform)
    path: str | None = None  # instance=file: .npz with weights, init, transitions, rewards
    instance_seed: int = 0
    planner: str = "auto"  # auto | history | belief | alpha
    max_nodes: int = MAX_NODES
    oracle_view: bool = False  # the context channel, for `rl.baselines.ContextOracle` only

    primary_metric = "pseudo_regret"  # exact; `regret` (realised) is reported beside it
    x_label = "episode k"

    def __post_init__(self):
        where = "env."
        check_choice("env.instance", self.instance, KINDS)
        check_choice("env.planner", self.planner, PLANNERS)
        check_int("env.max_nodes", self.max_nodes, 1)
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(x) for x in self.weights))
        self._refuse_unread()
        given = getattr(self, "_model", None)
        if self.instance == "given":
            if given is None:
                raise ConfigError("env.instance: 'given' is set by LatentMDP.from_model only")
            model = given
        elif self.instance == "file":
            if not self.path:
                raise ConfigError("env.path: instance=file needs the path of an .npz file")
            model = instances.load(self.path, self.episode_length, where)
        else:
            common = dict(
                num_states=self.num_states,
                num_actions=self.num_actions,
                horizon=self.episode_length,
                seed=self.instance_seed,
                weights=self.weights,
            )
            if self.instance == "garnet":
                kw = dict(num_contexts=self.num_contexts, degree=self.degree)
            elif self.instance == "lattice":
                if self.num_contexts != 2:
                    raise ConfigError(
                        f"env.num_contexts: the lattice family has M = 2 (got {self.num_contexts})"
                    )
                kw = dict(rho=self.rho, informative=self.informative)
            else:
                kw = dict(num_contexts=self.num_contexts, degree=self.degree, epsilon=self.epsilon)
            model = instances.make(self.instance, where, **common, **kw)
        M, S, A, H = model.sizes
        for name, value in (
            ("num_contexts", M),
            ("num_states", S),
            ("num_actions", A),
            ("episode_length", H),
        ):
            object.__setattr__(self, name, value)
        v_star = solve(model, self.planner, self.max_nodes, field="env.episode_length")
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_v_star", np.asarray(v_star))  # an array: static, not lifted

    def _refuse_unread(self) -> None:
        """One ConfigError line for a field the instance kind does not read set to a
        non-default value (it would be silently ignored, or overwritten by the instance's own
        sizes for ``file`` and `from_model`)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in sorted(INSTANCE_FIELDS - READS[self.instance]):
            value = getattr(self, name)
            if value != defaults[name]:
                what = {
                    "file": "the .npz file at env.path gives the instance",
                    "given": "LatentMDP.from_model's arrays give the instance",
                }.get(self.instance, f"instance={self.instance} does not read it")
                raise ConfigError(
                    f"env.{name}: not used here ({what}); leave it at its default"
                    f" {defaults[name]!r} (got {value!r})"
                )

    @classmethod
    def from_model(cls, model: LatentModel, **kwargs: Any) -> LatentMDP:
        """The env of a model built in Python (arrays validated by `check_model`). `kwargs`: the
        fields that do not describe the instance (planner, max_nodes, oracle_view); an instance
        field (sizes, degree, seed, ...) is refused unless it is its default."""
        model = check_model(*model)
        env = cls.__new__(cls)
        object.__setattr__(env, "_model", model)
        fields = {f.name: f.default for f in dataclasses.fields(cls)} | kwargs
        fields["instance"] = "given"
        for k, v in fields.items():
            object.__setattr__(env, k, v)
        env.__post_init__()
        return env

    # the instance's arrays decide the program: equality and hashing include them
    def _key(self) -> Any:
        return freeze({k: v for k, v in vars(self).items() if k != "_v_star"})

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def model(self) -> LatentModel:
        return self._model

    @property
    def v_star(self) -> float:
        return float(self._v_star)

    # ----------------------------------------------------------------- protocol
    def metric_info(self) -> dict[str, MetricInfo]:
        return {
            "regret": MetricInfo(label="cumulative regret against V* (realised)"),
            "pseudo_regret": MetricInfo(label="cumulative pseudo-regret Σ_k V* − V^{π_k} (exact)"),
            "reward": MetricInfo(label="cumulative reward", lower_is_better=False),
        }

    def agent_metrics(self, params: LatentParams, agent, agent_state, feedback) -> dict:
        """``pseudo_regret``: V* − V^{π_k} at the last step of episode k (0 before it), where
        π_k is the policy the agent played in the episode, valued exactly in the true LMDP.

        A learner exposing ``history_policy`` (the optimistic agents and PSRL: a deterministic
        policy over the dense history nodes, or with ``planner: points`` a policy graph,
        `rl.points.PointPolicy`; context-agnostic UCBVI: a Markov policy, `rl.backup.MarkovPolicy`,
        valued per context in O(H M S²) at any H; fixed within an episode) is valued
        by `rl.optimistic.evaluate_policy`, run only in the steps where an episode ends (all
        seeds end theirs together: `experiments.batched_cond.cond_any`); a reference agent with
        a fixed policy (``policy_value(spec)``: random, context oracle, Bayes-optimal) by its
        exact value, computed once on the host. Other agents report no pseudo-regret."""
        from experiments.batched_cond import cond_any
        from rl.optimistic import EvalInputs, evaluate_policy

        done = feedback.done
        f = params.rewards.dtype
        if hasattr(agent, "history_policy"):
            policy, plan_rewards = agent.history_policy(agent_state, params.rewards)
            model = EvalInputs(
                policy=policy,
                plan_rewards=plan_rewards,
                weights=params.weights,
                init=params.init,
                transitions=params.transitions,
                rewards=params.rewards,
            )
            value = cond_any(evaluate_policy, self.episode_length)(done, model, jnp.zeros((), f))
        elif hasattr(agent, "policy_value"):
            value = jnp.asarray(agent.policy_value(self.spec(params, 0)), f)
        else:
            return {}
        return {"pseudo_regret": jnp.where(done, params.v_star - value, jnp.zeros((), f))}

    def default_params(self) -> LatentParams:
        m = self._model
        f = jnp.result_type(float)
        return LatentParams(
            weights=jnp.asarray(m.weights, f),
            init=jnp.asarray(m.init, f),
            transitions=jnp.asarray(m.transitions, f),
            rewards=jnp.asarray(m.rewards, f),
            weights_cdf=jnp.asarray(cdf(m.weights), f),
            init_cdf=jnp.asarray(cdf(m.init), f),
            transitions_cdf=jnp.asarray(cdf(m.transitions), f),
            v_star=jnp.asarray(self.v_star, f),
        )

    def spec(self, params, horizon: int) -> LatentSpec:
        M, S, A, H = self._model.sizes
        return LatentSpec(M, S, A, H, bool(self.oracle_view), self.v_star, self._model)

    def reset_randomness(self, params):
        return {"context": Draw(UNIFORM), "init": Draw(UNIFORM)}

    def step_randomness(self, params, action):
        return {"next": Draw(UNIFORM)}

    def reset_env(self, rng, params: LatentParams) -> LatentState:
        m = sample(params.weights_cdf, rng["context"])
        s = sample(params.init_cdf[m], rng["init"])
        i = jnp.result_type(int)
        return LatentState(
            context=m, s=s, t=jnp.zeros((), i), ret=jnp.zeros((), params.rewards.dtype)
        )

    def observe_env(self, inner: LatentState, h, params) -> LatentObs:
        ctx = inner.context if self.oracle_view else jnp.full_like(inner.context, -1)
        return LatentObs(state=inner.s, context=ctx)

    def step_env(self, rng, inner: LatentState, h, action, params: LatentParams):
        A = params.rewards.shape[-1]
        a = jnp.asarray(action, inner.s.dtype)
        illegal = (a < 0) | (a >= A)
        a = jnp.clip(a, 0, A - 1)
        r = params.rewards[inner.context, inner.s, a]
        s2 = sample(params.transitions_cdf[inner.context, inner.s, a], rng["next"])
        new = LatentState(context=inner.context, s=s2, t=inner.t + 1, ret=inner.ret + r)
        return new, LatentFeedback(reward=r, next_state=s2), {"reward": r, "illegal": illegal}

    def reveal(self, inner: LatentState, params) -> jax.Array:
        """The context after the episode's last step; -1 before (hindsight)."""
        return jnp.where(inner.t == self.episode_length, inner.context, -1)

    def episode_metrics(self, inner: LatentState, params: LatentParams):
        return {"regret": params.v_star - inner.ret}

    def oracle(self, params, agent, horizon: int) -> dict[str, Any]:
        """Exact expected regret per episode of agents that declare their policy's value."""
        value = getattr(agent, "policy_value", None)
        if value is None:
            return {}
        v = float(value(self.spec(params, horizon)))
        return {"regret": np.full(horizon, self.v_star - v)}
