"""The gymnasium wrappers (`bandits.gym`, `paging.gym`; their base `experiments.gym`)."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from test_paging_env import lru_reference

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


# --------------------------------------------------------------------------- paging (paging.gym)
# Two envs shared by the tests below: each compiles its step once (a few seconds on 2 cores).
PAGING = {"trace": "zipf", "length": 300, "pages": 25, "cache_size": 5}
KINDS = {
    "discard": {"predictions": "discard", "flip_p": 0.5},
    "next_arrival": {"predictions": "next_arrival", "sigma": 3.0},
    "none": {"predictions": "none"},
}


def _paging(**kw):
    import paging.gym  # noqa: F401 (registers regretlab/Paging-v0)

    return gymnasium.make("regretlab/Paging-v0", **{**PAGING, **kw})


@pytest.fixture(scope="module")
def paging_envs():
    return {}


def _shared(paging_envs, kind):
    if kind not in paging_envs:
        paging_envs[kind] = _paging(**KINDS[kind])
    return paging_envs[kind]


@pytest.mark.parametrize(
    "kind", ["discard", "next_arrival", pytest.param("none", marks=pytest.mark.slow)]
)
def test_paging_check_env_passes_without_warnings(paging_envs, kind):
    env = _shared(paging_envs, kind)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert not caught, [str(w.message) for w in caught]


def test_paging_spaces_and_bad_arguments():
    from paging.gym import PAGING_ID, PagingEnv

    env = _paging(horizon=40)  # built, never stepped: nothing compiled
    assert env.spec.id == PAGING_ID
    raw = env.unwrapped
    assert isinstance(raw, PagingEnv)
    assert raw.action_space == gymnasium.spaces.Discrete(5)
    assert raw.observation_space["t"] == gymnasium.spaces.Discrete(41)
    assert raw.observation_space["slot_page"].shape == (5,)
    with pytest.raises(ConfigError, match="horizon"):
        _paging(horizon=301)  # longer than the trace
    with pytest.raises(ConfigError, match="cache_size"):
        _paging(cache_size=0)
    with pytest.raises(ConfigError, match="predictions"):
        _paging(predictions="oracle")


def test_paging_user_lru_matches_a_list_lru_and_opt_is_belady(paging_envs):
    """A user's LRU written against the observations pays what LRU on a list pays; the info's
    opt_faults is Belady's count (the reference of tests/test_paging_succinct.py)."""
    from test_paging_succinct import belady

    env = _shared(paging_envs, "discard")
    raw = env.unwrapped
    pages = np.asarray(raw.params["inputs"]["page"]).tolist()
    obs, info = env.reset(seed=0)
    assert info == {"faults": 0, "opt_faults": 0} and obs["t"] == 0
    used = [-1] * 5
    terminated, eta, steps = False, 0, 0
    while not terminated:
        evict = obs["slot"] < 0
        slot = int(np.argmin(used)) if evict else int(obs["slot"])
        obs_next, reward, terminated, truncated, info = env.step(slot if evict else 0)
        used[slot] = int(obs["t"])
        assert reward == -float(info["fault"]) and truncated is False
        eta += info["eta0"] + info["eta1"]
        obs, steps = obs_next, steps + 1
    assert steps == 300
    assert info["faults"] == lru_reference(pages, 5)
    assert info["opt_faults"] == belady(pages, 5)[0]
    # 300 bits flipped w.p. 1/2: fewer than 100 wrong bits has probability < 1e-8
    assert eta > 100
    with pytest.raises(RuntimeError, match="reset"):
        raw.step(0)
    env.reset(seed=0)
    with pytest.raises(IllegalActionError, match="action"):
        raw.step(5)


def test_paging_noise_follows_the_seed(paging_envs):
    env = _shared(paging_envs, "next_arrival")

    def preds(seed):
        obs, _ = env.reset(seed=seed)
        out = [float(obs["predicted_next"])]
        for _ in range(29):
            out.append(float(env.step(0)[0]["predicted_next"]))
        return out

    first = preds(3)
    assert preds(3) == first
    assert preds(4) != first  # 30 lognormal draws with sigma = 3 all equal: probability 0


def test_seeds_beyond_32_bits_give_their_own_streams():
    """`experiments.gym.seed_key`: seeds below 2^32 give key(seed) (streams unchanged); seeds
    differing only above bit 32 give different streams (key(seed) kept the low 32 bits without
    x64), and 2^63 works (it overflowed)."""
    import jax

    from experiments.gym import seed_key

    def rewards(seed: int) -> list[float]:
        env = gymnasium.make(BERNOULLI_ID, means=[0.5, 0.5, 0.5], horizon=40)
        env.reset(seed=seed)
        return [env.step(i % 3)[1] for i in range(40)]

    k = jax.random.key_data
    np.testing.assert_array_equal(k(seed_key(5)), k(jax.random.key(5)))
    assert rewards(5) != rewards(2**32 + 5)
    assert rewards(2**63) == rewards(2**63)
    with pytest.raises(ValueError, match="seed: must be an integer >= 0"):
        seed_key(-1)
