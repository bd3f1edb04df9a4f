"""The gymnasium wrappers of the K-armed bandits (`bandits.gym`)."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from bandits.gym import BERNOULLI_ID, GAUSSIAN_ID, BanditEnv, register_envs
from experiments.config import ConfigError
from experiments.protocol import IllegalActionError

IDS = [BERNOULLI_ID, GAUSSIAN_ID]


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_passes_without_warnings(env_id):
    env = gymnasium.make(env_id, means=[0.2, 0.5, 0.9], horizon=50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)  # the raw env, as gymnasium recommends
    assert not caught, [str(w.message) for w in caught]


@pytest.mark.parametrize("env_id", IDS)
def test_make_builds_the_registered_env(env_id):
    env = gymnasium.make(env_id, means=[0.1, 0.4, 0.3, 0.8], horizon=7)
    assert env.spec.id == env_id
    raw = env.unwrapped
    assert isinstance(raw, BanditEnv)
    assert raw.action_space == gymnasium.spaces.Discrete(4)
    assert raw.observation_space == gymnasium.spaces.Discrete(8)
    np.testing.assert_allclose(np.asarray(raw.params.means), [0.1, 0.4, 0.3, 0.8], rtol=1e-7)
    with pytest.raises(ConfigError, match="horizon"):
        gymnasium.make(env_id, means=[0.1, 0.4], horizon=0)
    with pytest.raises(ConfigError, match="means"):
        gymnasium.make(env_id, means=[0.1], horizon=5)


def test_make_gaussian_sigma_and_bernoulli_range():
    env = gymnasium.make(GAUSSIAN_ID, means=[0.0, 3.0], horizon=5, sigma=2.5)
    assert float(env.unwrapped.params.sigma) == 2.5
    with pytest.raises(ConfigError, match="sigma"):
        gymnasium.make(GAUSSIAN_ID, means=[0.0, 3.0], horizon=5, sigma=0.0)
    with pytest.raises(ConfigError, match="means"):
        gymnasium.make(BERNOULLI_ID, means=[0.0, 3.0], horizon=5)


def test_register_envs_is_idempotent():
    before = {i: gymnasium.registry[i] for i in IDS}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        register_envs()
        register_envs()
    assert not caught, [str(w.message) for w in caught]
    assert all(gymnasium.registry[i] is before[i] for i in IDS)


def _rewards(env, actions, seed):
    env.reset(seed=seed)
    return [env.step(a)[1] for a in actions]


@pytest.mark.parametrize("env_id", IDS)
def test_seeding_is_reproducible(env_id):
    actions = [0, 2, 1, 1, 2, 0, 2, 2, 1, 0] * 3
    a = gymnasium.make(env_id, means=[0.3, 0.5, 0.6], horizon=100)
    b = gymnasium.make(env_id, means=[0.3, 0.5, 0.6], horizon=100)
    first = _rewards(a, actions, seed=123)
    assert _rewards(b, actions, seed=123) == first
    assert _rewards(a, actions, seed=123) == first  # reset(seed) restarts the stream
    # Another seed gives other rewards: for Bernoulli, 30 equal draws have probability < 1e-6.
    assert _rewards(a, actions, seed=124) != first


def test_unseeded_reset_continues_the_stream():
    env = gymnasium.make(BERNOULLI_ID, means=[0.5, 0.5], horizon=40)
    first = _rewards(env, [0] * 40, seed=5)
    env.reset()  # no seed: the key stream goes on, so the next episode has new draws
    second = [env.step(0)[1] for _ in range(40)]
    assert second != first  # 40 equal fair coin flips: probability 2^-40


N_PULLS = 3000  # per arm


@pytest.mark.parametrize(
    ("env_id", "means", "sd"),
    [
        (BERNOULLI_ID, [0.2, 0.5, 0.9], None),
        (GAUSSIAN_ID, [-1.0, 0.0, 2.0], 0.5),
    ],
)
def test_empirical_means_match(env_id, means, sd):
    """Pull each arm N times; the mean reward is within 5 standard errors of its mean.

    5 se is a two-sided p of 5.7e-7 per arm, so with a fixed seed a failure means a wrong
    sampler, while e.g. a bias of 0.05 (> 5 x 0.0091, the largest se here) is caught.
    """
    kwargs = {"sigma": sd} if sd is not None else {}
    env = gymnasium.make(env_id, means=means, horizon=len(means) * N_PULLS, **kwargs)
    env.reset(seed=0)
    rewards = np.zeros((len(means), N_PULLS))
    best = max(means)
    for i in range(N_PULLS):
        for a, mu in enumerate(means):
            _, r, _, _, info = env.step(a)
            rewards[a, i] = r
            assert info["regret"] == pytest.approx(best - mu, abs=1e-6)  # float32 means
            assert info["realized_regret"] == pytest.approx(best - r, abs=1e-5)
    mu = np.asarray(means)
    se = (np.sqrt(mu * (1 - mu)) if sd is None else np.full_like(mu, sd)) / np.sqrt(N_PULLS)
    assert np.all(np.abs(rewards.mean(axis=1) - mu) < 5 * se), rewards.mean(axis=1)
    if sd is None:
        assert set(np.unique(rewards)) <= {0.0, 1.0}
    else:  # sample sd has standard error ~ sd / sqrt(2N)
        assert np.all(np.abs(rewards.std(axis=1, ddof=1) - sd) < 5 * sd / np.sqrt(2 * N_PULLS))


@pytest.mark.parametrize("env_id", IDS)
def test_truncated_at_horizon(env_id):
    env = gymnasium.make(env_id, means=[0.2, 0.7], horizon=5)
    obs, info = env.reset(seed=1)
    assert obs == 0 and info == {}
    for t in range(1, 6):
        obs, _, terminated, truncated, info = env.step(t % 2)
        assert obs == t and info["rounds"] == t
        assert terminated is False
        assert truncated is (t == 5)
    with pytest.raises(RuntimeError, match="reset"):
        env.unwrapped.step(0)
    obs, _ = env.reset()
    assert obs == 0
    assert env.step(0)[3] is False


def test_step_before_reset_and_illegal_actions():
    raw = gymnasium.make(BERNOULLI_ID, means=[0.2, 0.7, 0.4], horizon=5).unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        raw.step(0)
    raw.reset(seed=0)
    for bad in (3, -1, 1.5):
        with pytest.raises(IllegalActionError, match="action"):
            raw.step(bad)
    assert raw.step(np.int64(2))[0] == 1  # numpy integers are arms, too
