"""Pixel replay: frame-once storage checked against a naive buffer that keeps full obs stacks."""

import numpy as np
import pytest
import torch

from agents.augment import center_crop, random_crop
from agents.replay import PixelReplay, StateReplay


class StackingEnv:
    """Frames whose pixels encode (episode, step); the obs stack repeats the first frame at reset."""

    def __init__(self, k: int, size: int = 6) -> None:
        self.k, self.size, self.episode, self.t = k, size, 0, 0

    def frame(self) -> np.ndarray:
        f = np.zeros((3, self.size, self.size), np.uint8)
        f[0], f[1] = self.episode % 256, self.t % 256
        f[2] = (self.episode * 7 + self.t) % 256
        return f

    def reset(self) -> np.ndarray:
        self.episode += 1
        self.t = 0
        self.stack = [self.frame()] * self.k
        return np.concatenate(self.stack)

    def step(self) -> np.ndarray:
        self.t += 1
        self.stack = self.stack[1:] + [self.frame()]
        return np.concatenate(self.stack)


def fill(capacity: int, k: int, episode_lengths: list[int], seed: int = 0):
    """Fill both the frame-once buffer and a naive dict of full (obs, next_obs) by transition id."""
    env, replay = StackingEnv(k), PixelReplay(capacity, (3, 6, 6), k, action_dim=2, seed=seed)
    naive, tid = {}, 0
    for length in episode_lengths:
        obs = env.reset()
        replay.start_episode(obs)
        for step in range(length):
            nxt = env.step()
            action = np.array([tid, env.episode], np.float32)
            terminal = step == length - 1 and env.episode % 2 == 0
            replay.add(action, reward=float(tid), terminated=terminal, next_obs=nxt)
            naive[tid] = (obs, nxt, terminal, env.episode)
            obs, tid = nxt, tid + 1
    return replay, naive


@pytest.mark.parametrize("capacity", [10_000, 37])  # 37 forces wrap-around mid-episode
def test_sampled_stacks_equal_the_envs_own_stacks(capacity):
    k = 3
    replay, naive = fill(capacity, k, [5, 1, 9, 2, 12, 4])
    batches = [replay.sample(30) for _ in range(10)]
    batch = type(batches[0])(*(torch.cat([getattr(b, f) for b in batches]) for f in
                               ("obs", "action", "reward", "not_done", "next_obs")))
    for i in range(300):
        tid = int(batch.action[i, 0])
        obs, nxt, terminal, _ = naive[tid]
        assert torch.equal(batch.obs[i], torch.from_numpy(obs))
        assert torch.equal(batch.next_obs[i], torch.from_numpy(nxt))
        assert float(batch.reward[i]) == tid
        assert float(batch.not_done[i]) == (0.0 if terminal else 1.0)


def test_stacks_never_mix_episodes():
    replay, _ = fill(50, 4, [3, 7, 2, 9, 30, 6])
    batch = replay.sample(40)
    episodes = torch.cat([batch.obs[:, 0::3, 0, 0], batch.next_obs[:, 0::3, 0, 0]], dim=1)  # red = episode
    assert (episodes == episodes[:, :1]).all()


def test_bytes_per_transition_is_one_frame_plus_scalars():
    replay = PixelReplay(100, (3, 100, 100), 3, action_dim=6)
    frame = 3 * 100 * 100
    per = replay.bytes_per_transition()
    assert frame <= per <= frame + 64
    assert 180_000 / per > 5.9  # the reference layout (obs + next_obs stacks, 9x100x100 each)


def test_uniform_sampling_over_transitions():
    replay, naive = fill(10_000, 3, [10, 10])
    ids = torch.cat([replay.sample(20).action[:, 0] for _ in range(1000)])
    counts = np.bincount(ids.long().numpy(), minlength=len(naive))
    expected = 20_000 / len(naive)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 50.0  # 19 dof: p < 1e-4 would be > 43; a biased sampler lands far above


def test_sequences_are_consecutive_inside_one_episode():
    replay, naive = fill(200, 3, [4, 20, 3, 15, 8])
    seq = replay.sample_sequences(64, 6)
    ids = seq.action[..., 0].long()
    assert ids.shape == (64, 6)
    assert (ids[:, 1:] - ids[:, :-1] == 1).all()
    assert (seq.action[..., 1] == seq.action[:, :1, 1]).all()  # one episode per sequence
    with pytest.raises(ValueError, match="consecutive transitions"):
        replay.sample_sequences(4, 25)


def test_batch_larger_than_buffer_is_a_clear_error():
    replay, _ = fill(100, 3, [5])
    with pytest.raises(ValueError, match="larger than the filled replay buffer"):
        replay.sample(64)


def test_state_replay_round_trip():
    r = StateReplay(10, obs_dim=2, action_dim=1)
    r.start_episode(np.zeros(2))
    for t in range(1, 4):
        r.add(np.array([t]), t, False, np.full(2, t))
    b = r.sample(3)
    assert torch.equal(b.next_obs[:, 0] - b.obs[:, 0], torch.ones(3))


def test_random_crop_windows_come_from_the_image():
    g = torch.Generator().manual_seed(0)
    img = torch.arange(2 * 1 * 10 * 10, dtype=torch.float32).view(2, 1, 10, 10)
    out = random_crop(img, 4, g)
    for b in range(2):
        top, left = divmod(int(out[b, 0, 0, 0] - img[b, 0, 0, 0]), 10)
        assert torch.equal(out[b], img[b, :, top : top + 4, left : left + 4])
    assert torch.equal(center_crop(img, 4), img[..., 3:7, 3:7])
    with pytest.raises(ValueError, match="larger than the rendered image"):
        random_crop(img, 11)


@pytest.mark.parametrize("capacity", [10_000, 37])  # 37: the ring wraps, older episodes are overwritten
def test_episodes_written_to_disk_rebuild_the_same_buffer(tmp_path, capacity):
    from agents.replay_store import ReplayStore

    env, store = StackingEnv(3), ReplayStore(tmp_path / "replay")
    original = PixelReplay(capacity, (3, 6, 6), 3, action_dim=2, seed=5)
    rng = np.random.default_rng(0)
    for episode, length in enumerate([9, 14, 6, 11]):
        original.start_episode(env.reset())
        for step in range(length):
            original.add(rng.uniform(-1, 1, 2), float(rng.random()), step == length - 1 and episode == 2, env.step())
        store.write(episode, original.episode_arrays())
    store.write(4, original.episode_arrays())  # an episode "after the checkpoint": pruned below
    store.prune_from(4)
    rebuilt = PixelReplay(capacity, (3, 6, 6), 3, action_dim=2, seed=99)
    assert store.restore(rebuilt, 4) == 4
    rebuilt.set_rng_state(original.rng_state())
    assert rebuilt.ptr == original.ptr and rebuilt.size == original.size
    assert np.array_equal(rebuilt.ep_pos, original.ep_pos)
    a, b = original.sample(32), rebuilt.sample(32)
    for x, y in zip((a.obs, a.action, a.reward, a.not_done, a.next_obs), (b.obs, b.action, b.reward, b.not_done,
                                                                          b.next_obs)):
        assert torch.equal(x, y)
    with pytest.raises(FileNotFoundError, match="missing"):
        store.restore(PixelReplay(capacity, (3, 6, 6), 3, action_dim=2), 6)


def test_state_replay_episodes_round_trip(tmp_path):
    from agents.replay_store import ReplayStore

    rng = np.random.default_rng(1)
    original, store = StateReplay(100, 4, 2, seed=3), ReplayStore(tmp_path)
    for episode in range(3):
        original.start_episode(rng.normal(size=4))
        for _ in range(7):
            original.add(rng.uniform(-1, 1, 2), float(rng.random()), False, rng.normal(size=4))
        store.write(episode, original.episode_arrays())
    rebuilt = StateReplay(100, 4, 2, seed=0)
    store.restore(rebuilt, 3)
    rebuilt.set_rng_state(original.rng_state())
    a, b = original.sample(16), rebuilt.sample(16)
    assert torch.equal(a.obs, b.obs) and torch.equal(a.next_obs, b.next_obs) and torch.equal(a.action, b.action)
