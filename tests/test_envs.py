"""Contract tests for envs/: DMC pixels/states conventions, seeding, gymnasium/SB3 interop, synthetic task."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs

SIZE = 32  # small renders keep the file fast; the contract does not depend on the size


def _dmc(name: str = "cheetah-run", **kwargs) -> envs.DMCEnv:
    kwargs.setdefault("image_size", SIZE)
    return envs.make_dmc(name, **kwargs)


def _run_episode(env: gym.Env, seed: int) -> tuple[int, dict]:
    env.reset(seed=seed)
    steps = 0
    while True:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            return steps, info


# -- package / naming -------------------------------------------------------------------------------
def test_import_envs_does_not_import_dm_control() -> None:
    code = "import sys, envs; assert 'dm_control' not in sys.modules; assert 'mujoco' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_action_repeat_and_camera() -> None:
    assert envs.default_action_repeat("finger-spin") == 2
    assert envs.default_action_repeat("walker-walk") == 2
    assert envs.default_action_repeat("cartpole-swingup") == 8
    assert envs.default_action_repeat("cartpole-balance") == 8
    for name in ("cheetah-run", "reacher-easy", "ball_in_cup-catch"):
        assert envs.default_action_repeat(name) == 4
    assert envs.default_action_repeat("synthetic-reach") == envs.SyntheticReach.DEFAULT_ACTION_REPEAT
    env = _dmc("quadruped-walk", from_pixels=False)
    assert env.unwrapped.camera_id == 2 and env.unwrapped.action_repeat == 4
    assert _dmc("ball_in_cup-catch", from_pixels=False).unwrapped.camera_id == 0


def test_available_tasks() -> None:
    tasks = envs.available_tasks()
    for name in (
        "cheetah-run",
        "ball_in_cup-catch",
        "finger-spin",
        "cartpole-swingup",
        "reacher-easy",
        "walker-walk",
        "point_mass-easy",
        "synthetic-reach",
    ):
        assert name in tasks


def test_unknown_name_lists_tasks() -> None:
    with pytest.raises(ValueError, match="unknown DeepMind Control task 'cheetah-fly'.*cheetah-run"):
        envs.make_dmc("cheetah-fly")
    with pytest.raises(ValueError, match="ball_in_cup-catch"):
        envs.make_env("nodash")
    with pytest.raises(ValueError, match="synthetic-reach"):
        envs.make_env("synthetic-nope")


@pytest.mark.parametrize("make", [lambda **kw: envs.make_dmc("cheetah-run", **kw), envs.SyntheticReach])
def test_bad_sizes_raise(make) -> None:
    with pytest.raises(ValueError, match="image_size=8 is too small"):
        make(image_size=8)
    with pytest.raises(ValueError, match="at least 84x84"):
        make(image_size=64, min_image_size=84)
    with pytest.raises(ValueError, match="frame_stack"):
        make(frame_stack=0)
    with pytest.raises(ValueError, match="action_repeat"):
        make(action_repeat=0)
    make(image_size=8, from_pixels=False).close()  # size is irrelevant for states


def test_bad_camera_id_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="camera_id=9 is out of range"):
        _dmc(camera_id=9)


# -- observations -----------------------------------------------------------------------------------
def test_pixel_spaces_and_dtypes() -> None:
    env = _dmc(frame_stack=3)
    assert env.observation_space.shape == (9, SIZE, SIZE) and env.observation_space.dtype == np.uint8
    assert env.action_space.dtype == np.float32 and env.action_space.shape == (6,)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    obs, info = env.reset(seed=0)
    assert obs.shape == (9, SIZE, SIZE) and obs.dtype == np.uint8 and obs.flags.c_contiguous
    assert info == {"env_steps": 0, "action_repeat": 4}
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs in env.observation_space and isinstance(reward, float)
    assert terminated is False and truncated is False
    assert obs.std() > 0  # an actual image, not a blank buffer


def test_state_spaces_and_dtypes() -> None:
    env = _dmc(from_pixels=False)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (17,) and obs.dtype == np.float32  # cheetah: 8 positions + 9 velocities
    obs, *_ = env.step(env.action_space.sample())
    assert obs.dtype == np.float32 and obs in env.observation_space


def test_frame_stack_at_reset_and_shift() -> None:
    env = _dmc(frame_stack=3, render_mode="rgb_array")
    obs0, _ = env.reset(seed=1)
    assert np.array_equal(obs0[0:3], obs0[3:6]) and np.array_equal(obs0[3:6], obs0[6:9])
    assert np.array_equal(obs0[6:9], env.render().transpose(2, 0, 1))
    obs1, *_ = env.step(np.ones(6, dtype=np.float32))
    obs2, *_ = env.step(-np.ones(6, dtype=np.float32))
    assert np.array_equal(obs1[0:6], obs0[3:9])  # shifted oldest -> newest
    assert np.array_equal(obs2[0:6], obs1[3:9])
    assert not np.array_equal(obs2[6:9], obs1[6:9])  # a new frame arrived
    assert np.array_equal(obs2[6:9], env.render().transpose(2, 0, 1))
    obs0[:] = 0  # returned arrays are the caller's: writing to one must not touch the env's stack
    assert np.array_equal(env.step(np.zeros(6))[0][0:6], obs2[3:9])


def test_renders_once_per_agent_step(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _dmc(action_repeat=4)
    physics = env.unwrapped.physics
    calls = []
    real_render = physics.render

    def counting_render(*args, **kwargs):
        calls.append(physics.data.time)
        return real_render(*args, **kwargs)

    monkeypatch.setattr(physics, "render", counting_render)
    env.reset(seed=0)
    assert len(calls) == 1
    for _ in range(3):
        env.step(env.action_space.sample())
    assert len(calls) == 4
    dt = env.unwrapped.dm_env.control_timestep()
    assert calls[-1] == pytest.approx(3 * 4 * dt)  # rendered after the last repeated physics step


def test_state_env_never_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _dmc(from_pixels=False)
    monkeypatch.setattr(env.unwrapped.physics, "render", lambda *a, **k: pytest.fail("rendered"))
    env.reset(seed=0)
    env.step(env.action_space.sample())


def test_render_rgb_array() -> None:
    for from_pixels in (True, False):
        env = _dmc("cartpole-swingup", from_pixels=from_pixels, render_mode="rgb_array")
        env.reset(seed=0)
        frame = env.render()
        assert frame.shape == (SIZE, SIZE, 3) and frame.dtype == np.uint8
        env.close()
        env.close()  # closing twice is allowed


# -- stepping semantics -----------------------------------------------------------------------------
def test_action_repeat_counts_env_steps() -> None:
    env = _dmc("cartpole-swingup", from_pixels=False)
    assert env.unwrapped.action_repeat == 8
    env.reset(seed=0)
    dt = env.unwrapped.dm_env.control_timestep()
    for k in range(1, 4):
        *_, info = env.step(env.action_space.sample())
        assert info["env_steps"] == 8 * k and info["action_repeat"] == 8
        assert env.unwrapped.physics.data.time == pytest.approx(8 * k * dt)


def test_rewards_summed_over_repeats() -> None:
    action = np.full(6, 0.7, dtype=np.float32)
    single = _dmc(from_pixels=False, action_repeat=1)
    single.reset(seed=3)
    expected = sum(single.step(action)[1] for _ in range(4))
    repeated = _dmc(from_pixels=False, action_repeat=4)
    repeated.reset(seed=3)
    assert repeated.step(action)[1] == pytest.approx(expected)
    assert expected > 0


def test_time_limit_truncates() -> None:
    env = _dmc(from_pixels=False, action_repeat=4, episode_length=12)
    steps, info = _run_episode(env, seed=0)
    assert steps == 3 and info["env_steps"] == 12
    # a limit that is not a multiple of the repeat stops exactly at the limit
    env = _dmc(from_pixels=False, action_repeat=4, episode_length=10)
    env.reset(seed=0)
    results = [env.step(env.action_space.sample()) for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True] and [r[2] for r in results] == [False] * 3
    assert results[-1][4]["env_steps"] == 10
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())


def test_default_time_limit_is_1000_env_steps() -> None:
    env = _dmc("cartpole-swingup", from_pixels=False)  # 125 agent steps at repeat 8: cheap
    steps, info = _run_episode(env, seed=0)
    assert steps == 125 and info["env_steps"] == 1000


# -- seeding ----------------------------------------------------------------------------------------
def test_same_seed_same_first_observation() -> None:
    a, b = _dmc(seed=7), _dmc(seed=7)
    obs_a, obs_b = a.reset()[0], b.reset()[0]
    assert np.array_equal(obs_a, obs_b)
    assert np.array_equal(a.reset(seed=11)[0], b.reset(seed=11)[0])
    states = _dmc(from_pixels=False)
    first = states.reset(seed=5)[0]
    assert not np.array_equal(first, states.reset(seed=6)[0])
    assert np.array_equal(first, states.reset(seed=5)[0])


def test_construction_seed_applies_to_the_first_unseeded_reset_only() -> None:
    def dmc(seed):
        return _dmc(from_pixels=False, seed=seed)

    def synthetic(seed):
        return envs.SyntheticReach(from_pixels=False, seed=seed)

    for make in (dmc, synthetic):
        built, reseeded = make(7), make(None)
        first = built.reset()[0]
        assert np.array_equal(first, reseeded.reset(seed=7)[0])  # the construction seed, taken at reset
        assert not np.array_equal(first, built.reset()[0])  # ... once: the next reset continues the stream
        assert np.array_equal(make(7).reset(seed=3)[0], reseeded.reset(seed=3)[0])  # an explicit seed wins


def test_seeded_trajectories_match() -> None:
    def rollout() -> list[np.ndarray]:
        env = _dmc("walker-walk", from_pixels=False, seed=2)
        env.reset()
        env.action_space.seed(0)
        return [env.step(env.action_space.sample())[0] for _ in range(5)]

    assert all(np.array_equal(x, y) for x, y in zip(rollout(), rollout(), strict=True))


# -- interop ----------------------------------------------------------------------------------------
_EXPECTED_CHECK_WARNINGS = ("not having a spec", "infinity")


@pytest.mark.parametrize(
    "make",
    [
        lambda: _dmc("reacher-easy", render_mode="rgb_array"),
        lambda: _dmc("reacher-easy", from_pixels=False, render_mode="rgb_array"),
        lambda: envs.SyntheticReach(image_size=SIZE, render_mode="rgb_array"),
        lambda: envs.SyntheticReach(from_pixels=False, render_mode="rgb_array"),
    ],
    ids=["dmc-pixels", "dmc-states", "synthetic-pixels", "synthetic-states"],
)
def test_check_env(make) -> None:
    env = make()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    unexpected = [str(w.message) for w in caught if not any(k in str(w.message) for k in _EXPECTED_CHECK_WARNINGS)]
    assert unexpected == []


@pytest.mark.parametrize("name", ["synthetic-reach", "cheetah-run"])
def test_sync_vector_env(name: str) -> None:
    vec = gym.vector.SyncVectorEnv(
        [lambda: envs.make_env(name, image_size=SIZE, action_repeat=2, episode_length=8) for _ in range(2)]
    )
    obs, info = vec.reset(seed=0)
    assert obs.shape == (2, 9, SIZE, SIZE) and obs.dtype == np.uint8
    assert not np.array_equal(obs[0], obs[1])  # seeds 0 and 1
    for _ in range(4):
        obs, reward, terminated, truncated, info = vec.step(vec.action_space.sample())
    assert reward.shape == (2,) and np.all(truncated) and not np.any(terminated)
    assert list(info["env_steps"]) == [8, 8]
    vec.close()


def test_renderer_failure_is_one_clear_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _dmc()

    def broken(*args, **kwargs):
        raise RuntimeError("eglInitialize failed: EGL_NOT_INITIALIZED\n<long GL traceback>")

    monkeypatch.setattr(env.unwrapped.physics, "render", broken)
    with pytest.raises(RuntimeError, match=r"install libegl1 .* MUJOCO_GL=osmesa") as excinfo:
        env.reset(seed=0)
    assert "\n" not in str(excinfo.value) and "EGL_NOT_INITIALIZED" in str(excinfo.value)


def test_bad_gl_backend_at_import_is_one_clear_sentence() -> None:
    code = "import envs\ntry:\n    envs.make_dmc('cheetah-run')\nexcept RuntimeError as e:\n    print(e)\n"
    env = {**os.environ, "MUJOCO_GL": "not-a-backend"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "MUJOCO_GL=not-a-backend" in out.stdout and "install libegl1" in out.stdout


# -- synthetic task ---------------------------------------------------------------------------------
def test_synthetic_conventions() -> None:
    env = envs.make_env("synthetic-reach", image_size=SIZE, frame_stack=3, seed=0)
    assert env.unwrapped.action_repeat == 2
    obs, info = env.reset()
    assert obs.shape == (9, SIZE, SIZE) and obs.dtype == np.uint8 and info["env_steps"] == 0
    assert np.array_equal(obs[0:3], obs[6:9])
    steps, info = _run_episode(env, seed=0)
    assert steps == 50 and info["env_steps"] == 100
    assert np.array_equal(envs.SyntheticReach(seed=4).reset()[0], envs.SyntheticReach(seed=4).reset()[0])


def test_synthetic_oracle_beats_random() -> None:
    env = envs.SyntheticReach(image_size=SIZE)

    def mean_return(policy) -> float:
        returns = []
        for episode in range(10):
            env.reset(seed=episode)
            env.action_space.seed(episode)
            total, done = 0.0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(policy())
                assert 0.0 <= reward <= env.action_repeat
                total += reward
                done = terminated or truncated
            returns.append(total)
        return float(np.mean(returns))

    oracle = mean_return(env.oracle_action)
    random = mean_return(env.action_space.sample)
    assert oracle > 80.0 and random < 40.0 and oracle > 2.5 * random


def test_sb3_sac_cnn_policy_runs_on_synthetic() -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    env = envs.make_env("synthetic-reach", image_size=48, seed=0)
    model = sb3.SAC("CnnPolicy", env, buffer_size=200, learning_starts=32, batch_size=16, seed=0, device="cpu")
    model.learn(total_timesteps=64)
    action, _ = model.predict(env.reset()[0], deterministic=True)
    assert action.shape == (2,)


def test_sb3_sac_cnn_policy_runs_on_dmc() -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    env = envs.make_dmc("cartpole-swingup", image_size=48, seed=0)
    model = sb3.SAC("CnnPolicy", env, buffer_size=100, learning_starts=8, batch_size=8, seed=0, device="cpu")
    model.learn(total_timesteps=16)
