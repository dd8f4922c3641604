"""Random streams: every stream from SeedSequence(seed); no two run seeds share a start state."""

import numpy as np
import torch

from agents.seeding import STREAMS, RunSeeds
from envs.synthetic import SyntheticReach


def start_states(seed: int, stream: str, episodes: int) -> set[int]:
    return {RunSeeds(seed).episode_seed(stream, e) for e in range(episodes)}


def test_no_two_run_seeds_share_a_train_or_eval_start_state():
    seen: dict[int, tuple[int, str]] = {}
    for seed in range(1, 21):
        for stream, episodes in (("train_env", 200), ("eval_env", 10)):
            for s in start_states(seed, stream, episodes):
                assert s not in seen, f"seed {seed} {stream} shares a start state with {seen[s]}"
                seen[s] = (seed, stream)
    assert len(seen) == 20 * 210


def test_old_offset_scheme_overlapped_and_the_env_states_now_differ():
    # the scheme this replaces: eval seed = seed + 10000 + episode -> seeds 1 and 2 share 9 of 10
    old = [{seed + 10_000 + e for e in range(10)} for seed in (1, 2)]
    assert len(old[0] & old[1]) == 9
    env = SyntheticReach(from_pixels=False)
    firsts = []
    for seed in (1, 2):
        obs, _ = env.reset(seed=RunSeeds(seed).episode_seed("eval_env", 0))
        firsts.append(obs)
    assert not np.allclose(firsts[0], firsts[1])


def test_streams_are_reproducible_and_distinct():
    a, b = RunSeeds(3), RunSeeds(3)
    assert a.numpy_rng("replay").integers(2**62) == b.numpy_rng("replay").integers(2**62)
    draws = {name: int(a.numpy_rng(name).integers(2**62)) for name in STREAMS}
    assert len(set(draws.values())) == len(STREAMS)
    g1, g2 = a.torch_generator("agent"), RunSeeds(4).torch_generator("agent")
    assert not torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))
