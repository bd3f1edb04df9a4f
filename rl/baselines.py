"""Reference agents for the latent-MDP environment (`rl.latent_mdp`): they exercise the env end to
end and anchor its regret curves. None of them learns.

* `LatentRandom` (``agents=[latent_random]``): a uniformly random action at every step, from one
  engine-drawn uniform. Knows only A. Its exact value is that of the uniform Markov policy.
* `ContextOracle` (``agents=[context_oracle]``): knows the true model (w, ν, P, R) **and the
  episode's context m from the episode's first step** (the observation's privileged ``context``
  channel, present only with ``env.oracle_view=true``; off by default, and turned on by this
  agent's config: conf/env/latent_mdp.yaml reads ``agents.context_oracle.oracle_view``), and
  plays the optimal Markov policy of MDP m
  (finite-horizon value iteration in M_m alone). Its value Σ_m w_m V*_m is the context-aware
  benchmark, >= V* (knowing m can only help), so its regret against V* is <= 0: a reference
  of our own, not a competitor and not an algorithm of Zhou, Wang & Du (ICML 2023).
* `BayesOptimal` (used in the tests; no config file): knows the true model but **not** the
  context; plays the exact optimal history-dependent policy, tracking its node of the
  belief-merged graph (`rl.planning.belief_graph`) from the observed states and rewards. Its
  expected regret against V* is 0.

Each declares ``policy_value(spec)``, the exact value of its policy, which the env's ``oracle``
hook turns into the exact expected regret per episode (the run's self-check).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from experiments.config import ConfigError
from experiments.episodic import EpisodeFeedback, EpisodeObs
from experiments.protocol import UNIFORM, AgentBase, Draw
from rl.backup import int_dtype
from rl.planning import belief_graph, context_values, graph_policy, markov_value


@dataclass(frozen=True)
class LatentRandom(AgentBase):
    """Uniformly random actions (one engine-drawn uniform per step)."""

    def randomness(self, spec):
        return {"u": Draw(UNIFORM)}

    def init(self, key, spec):
        return jnp.asarray(spec.num_actions, int_dtype())  # A: the state, since `act` has no spec

    def act(self, rng, state, obs: EpisodeObs):
        return jnp.minimum(jnp.floor(rng["u"] * state), state - 1).astype(int_dtype())

    def update(self, state, obs, action, feedback):
        return state

    def policy_value(self, spec) -> float:
        _, S, A, H = spec.model.sizes
        return markov_value(spec.model, np.full((H, S, A), 1.0 / A))


class ContextOracleState(NamedTuple):
    policy: jnp.ndarray  # (M, H, S) optimal Markov action of each context


@dataclass(frozen=True)
class ContextOracle(AgentBase):
    """The optimal policy of the episode's MDP, the context known from the first step.

    ``oracle_view`` (always true) is this agent's request for the env's privileged channel: the
    latent_mdp env config sets ``env.oracle_view`` from it, so the channel is on only in runs
    that include this agent; an env built without it is refused at ``init`` in one line."""

    oracle_view: bool = True

    def __post_init__(self):
        if self.oracle_view is not True:
            raise ConfigError(
                "oracle_view: must be true (the context oracle reads the episode's context from"
                f" the first step; got {self.oracle_view!r})"
            )

    def init(self, key, spec):
        if not spec.oracle_view:
            raise ConfigError(
                "agents.context_oracle: needs env.oracle_view=true (it reads the episode's"
                " context from the first step; the env hides it by default)"
            )
        _, policy = context_values(spec.model)
        return ContextOracleState(policy=jnp.asarray(policy, int_dtype()))

    def act(self, rng, state: ContextOracleState, obs: EpisodeObs):
        m = jnp.maximum(obs.obs.context, 0)
        return state.policy[m, obs.h, obs.obs.state]

    def update(self, state, obs, action, feedback):
        return state

    def policy_value(self, spec) -> float:
        return float(spec.model.weights @ context_values(spec.model)[0])

    def info(self, spec) -> dict:
        """Printed after the run's table: what the reference knows, and its exact value."""
        value = self.policy_value(spec)
        return {
            "reference": {
                "message": (
                    "a reference, not a competitor: knows the model and each episode's context"
                    f" from its first step; its value sum_m w_m V*_m = {value:.6g} >="
                    f" V* = {spec.v_star:.6g}, so its regret against V* is <= 0"
                ),
                "value": value,
            }
        }


class BayesOptimalState(NamedTuple):
    action: jnp.ndarray  # (H, N) optimal action at each node of the belief graph
    child: jnp.ndarray  # (H, N, A, M, S) next node after (a, reward class, s'); -1: none
    first: jnp.ndarray  # (S,) node of step 1 for s_1
    rewards: jnp.ndarray  # (M, S, A) to find the reward class of an observed reward
    node: jnp.ndarray  # current node (valid for h >= 1)


def _tables(spec):
    model = spec.model
    graph = belief_graph(model)
    actions, _, _ = graph_policy(model, graph)
    M, S, A, H = model.sizes
    N = max(len(lv.states) for lv in graph.levels)
    act = np.zeros((H, N), np.int64)
    child = -np.ones((H, N, A, M, S), np.int64)
    for h, (lv, a) in enumerate(zip(graph.levels, actions, strict=True)):
        act[h, : len(a)] = a
        child[h, : len(a)] = lv.child
    return act, child, graph.first


@dataclass(frozen=True)
class BayesOptimal(AgentBase):
    """The exact optimal history-dependent policy (model known, context not)."""

    def init(self, key, spec):
        act, child, first = _tables(spec)
        i = int_dtype()
        return BayesOptimalState(
            action=jnp.asarray(act, i),
            child=jnp.asarray(child, i),
            first=jnp.asarray(first, i),
            rewards=jnp.asarray(spec.model.rewards, jnp.result_type(float)),
            node=jnp.zeros((), i),
        )

    def _node(self, state: BayesOptimalState, obs: EpisodeObs):
        return jnp.where(obs.h == 0, state.first[obs.obs.state], state.node)

    def act(self, rng, state: BayesOptimalState, obs: EpisodeObs):
        return state.action[obs.h, self._node(state, obs)]

    def update(self, state: BayesOptimalState, obs: EpisodeObs, action, feedback: EpisodeFeedback):
        node = self._node(state, obs)
        s = obs.obs.state
        r = feedback.feedback.reward
        j = jnp.argmax(state.rewards[:, s, action] == r).astype(node.dtype)  # reward class
        nxt = state.child[obs.h, node, action, j, feedback.feedback.next_state]
        return state._replace(node=jnp.where(feedback.done, 0, jnp.maximum(nxt, 0)))

    def policy_value(self, spec) -> float:
        return graph_policy(spec.model, belief_graph(spec.model))[2]
