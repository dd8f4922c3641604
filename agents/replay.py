"""Replay buffers. The pixel buffer stores every rendered frame once.

Layout: a ring of *slots*, one frame each. An episode occupies consecutive slots: its reset frame,
then one frame per step. Slot ``i`` with ``ep_pos[i] >= 1`` ends the transition
``(stack(i-1), action[i], reward[i], not_done[i], stack(i))``; a stack of ``k`` frames is rebuilt at
sample time from slots ``i-k+1..i`` clamped at the episode's first slot, which is exactly what the
env's frame stack holds (at reset it repeats the first frame). So a transition costs one
``3xHxW`` frame plus scalars instead of two ``3k x H x W`` stacks (CURL's layout: 180,000 B at 100x100).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from representations.core.errors import UserError


@dataclass
class Batch:
    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    not_done: torch.Tensor
    next_obs: torch.Tensor


class PixelReplay:
    """Frame-once pixel replay with episode-aware frame stacking and sequence sampling."""

    def __init__(self, capacity: int, frame_shape: tuple[int, int, int], frame_stack: int, action_dim: int,
                 device: str | torch.device = "cpu", storage_device: str | torch.device = "cpu",
                 seed: int = 0) -> None:
        if capacity < frame_stack + 2:
            raise UserError(f"replay capacity {capacity} is too small for frame stack {frame_stack}")
        self.capacity = capacity
        self.k = frame_stack
        self.channels = frame_shape[0]
        self.device = torch.device(device)
        store = torch.device(storage_device)
        self.frames = torch.zeros((capacity, *frame_shape), dtype=torch.uint8, device=store)
        self.actions = torch.zeros((capacity, action_dim), dtype=torch.float32, device=store)
        self.rewards = torch.zeros((capacity,), dtype=torch.float32, device=store)
        self.not_done = torch.ones((capacity,), dtype=torch.float32, device=store)
        self.ep_pos = np.full((capacity,), -1, dtype=np.int64)  # position within episode, -1 = empty
        self.ptr = 0
        self.size = 0
        self._rng = np.random.default_rng(seed)
        self._in_episode = False
        self._episode_slots = 0  # slots written by the current episode (reset frame included)

    # -- writing ---------------------------------------------------------------------------------
    def _newest_frame(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(obs)[-self.channels :])

    def _advance(self) -> int:
        slot = self.ptr
        self.ptr = (self.ptr + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return slot

    def start_episode(self, obs: np.ndarray) -> None:
        """Store the reset frame of a new episode (the last ``C`` channels of the stacked obs)."""
        slot = self._advance()
        self.frames[slot] = self._newest_frame(obs)
        self.ep_pos[slot] = 0
        self._in_episode = True
        self._episode_slots = 1

    def add(self, action: np.ndarray, reward: float, terminated: bool, next_obs: np.ndarray) -> None:
        """Store one step: its action, reward, termination flag and the newly rendered frame."""
        if not self._in_episode:
            raise RuntimeError("call start_episode(obs) after every reset before add()")
        prev = (self.ptr - 1) % self.capacity
        slot = self._advance()
        self.frames[slot] = self._newest_frame(next_obs)
        self.actions[slot] = torch.as_tensor(np.asarray(action, dtype=np.float32))
        self.rewards[slot] = float(reward)
        self.not_done[slot] = 0.0 if terminated else 1.0
        self.ep_pos[slot] = self.ep_pos[prev] + 1
        self._episode_slots += 1

    def episode_arrays(self) -> dict[str, np.ndarray]:
        """The current episode as compact arrays (frames once, (T+1, C, H, W)) for ReplayStore."""
        if not self._in_episode or self._episode_slots > self.capacity:
            raise ValueError(f"the current episode ({self._episode_slots} frames) does not fit the replay "
                             f"capacity {self.capacity}; raise replay_capacity")
        slots = (self.ptr - self._episode_slots + np.arange(self._episode_slots)) % self.capacity
        steps = torch.as_tensor(slots[1:], device=self.frames.device)
        return {"frames": self.frames[torch.as_tensor(slots, device=self.frames.device)].cpu().numpy(),
                "actions": self.actions[steps].cpu().numpy(), "rewards": self.rewards[steps].cpu().numpy(),
                "terminated": (self.not_done[steps] == 0).cpu().numpy()}

    def add_episode(self, arrays: dict[str, np.ndarray]) -> None:
        """Write a stored episode back exactly as it was first added (resume)."""
        self.start_episode(arrays["frames"][0])
        for t in range(len(arrays["actions"])):
            self.add(arrays["actions"][t], float(arrays["rewards"][t]), bool(arrays["terminated"][t]),
                     arrays["frames"][t + 1])

    def rng_state(self) -> dict:
        return self._rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self._rng.bit_generator.state = state

    # -- reading ---------------------------------------------------------------------------------
    def _age(self, slots: np.ndarray) -> np.ndarray:
        """0 for the oldest stored slot, size-1 for the newest."""
        oldest = self.ptr if self.size == self.capacity else 0
        return (slots - oldest) % self.capacity

    def _valid_ends(self, slots: np.ndarray, length: int) -> np.ndarray:
        """Slots that end ``length`` consecutive transitions of one episode, all frames still stored."""
        pos = self.ep_pos[slots]
        need = length - 1 + self.k  # frames back from the end slot that the oldest stack may touch
        age = self._age(slots)
        return (pos >= length) & (age < self.size) & (age >= np.minimum(pos, need))

    @property
    def num_transitions(self) -> int:
        return int(self._valid_ends(np.arange(self.capacity), 1).sum()) if self.size else 0

    def bytes_per_transition(self) -> float:
        """Storage bytes per stored slot (frame + action + reward + flag + position)."""
        per_slot = (self.frames[0].numel() * self.frames.element_size() + self.actions[0].numel() * 4 + 4 + 4 + 8)
        return float(per_slot)

    def _sample_ends(self, n: int, length: int) -> np.ndarray:
        """Uniform over valid end slots by rejection: draw stored slots, redraw the invalid ones."""
        if self.size == 0:
            raise ValueError("the replay buffer is empty")
        if length == 1 and n > self.size:
            raise ValueError(f"batch size {n} is larger than the filled replay buffer ({self.size} frames)")
        oldest = self.ptr if self.size == self.capacity else 0
        ends = np.empty(n, dtype=np.int64)
        todo = np.arange(n)
        for _ in range(64):
            cand = (oldest + self._rng.integers(0, self.size, size=len(todo))) % self.capacity
            ok = self._valid_ends(cand, length)
            ends[todo[ok]] = cand[ok]
            todo = todo[~ok]
            if len(todo) == 0:
                return ends
        valid = np.flatnonzero(self._valid_ends(np.arange(self.capacity), length))
        if len(valid) == 0:
            raise ValueError(
                f"the replay buffer holds no run of {length} consecutive transitions inside one episode "
                f"({self.size} frames stored); is the sequence longer than the episodes?"
            )
        ends[todo] = valid[self._rng.integers(0, len(valid), size=len(todo))]
        return ends

    def _stacks(self, ends: np.ndarray) -> torch.Tensor:
        """(N, k+1) slot indices: for each end slot, frames i-k..i clamped at the episode start."""
        back = np.arange(self.k, -1, -1)  # k, ..., 0
        offset = np.minimum(back[None, :], self.ep_pos[ends][:, None])
        return torch.as_tensor((ends[:, None] - offset) % self.capacity)

    def _gather(self, ends: np.ndarray) -> Batch:
        idx = self._stacks(ends).to(self.frames.device)
        n = len(ends)
        frames = self.frames[idx.flatten()].view(n, self.k + 1, *self.frames.shape[1:])
        frames = frames.to(self.device, non_blocking=True)
        shape = (n, self.k * self.channels, *self.frames.shape[2:])
        obs = frames[:, :-1].reshape(shape)
        next_obs = frames[:, 1:].reshape(shape)
        e = torch.as_tensor(ends, device=self.frames.device)
        return Batch(obs, self.actions[e].to(self.device), self.rewards[e].to(self.device)[:, None],
                     self.not_done[e].to(self.device)[:, None], next_obs)

    def sample(self, batch_size: int) -> Batch:
        """Uniform over stored transitions; stacks never mix two episodes."""
        return self._gather(self._sample_ends(batch_size, 1))

    def sample_observations(self, n: int) -> torch.Tensor:
        """``n`` stacked observations drawn uniformly from the whole buffer (M-CURL's random replacements)."""
        ends = self._sample_ends(n, 1)
        idx = self._stacks(ends)[:, :-1].to(self.frames.device)
        frames = self.frames[idx.flatten()].view(n, self.k, *self.frames.shape[1:]).to(self.device)
        return frames.reshape(n, self.k * self.channels, *self.frames.shape[2:])

    def sample_sequences(self, num_sequences: int, length: int) -> Batch:
        """``num_sequences`` runs of ``length`` consecutive transitions, each inside one episode.

        Tensors are shaped (num_sequences, length, ...).
        """
        last = self._sample_ends(num_sequences, length)
        ends = (last[:, None] - np.arange(length - 1, -1, -1)[None, :]) % self.capacity
        flat = self._gather(ends.reshape(-1))
        return Batch(*(t.view(num_sequences, length, *t.shape[1:]) for t in
                       (flat.obs, flat.action, flat.reward, flat.not_done, flat.next_obs)))


class StateReplay:
    """Plain transition storage for state-based SAC."""

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, device: str | torch.device = "cpu",
                 seed: int = 0) -> None:
        self.capacity = capacity
        self.device = torch.device(device)
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros((capacity, action_dim), dtype=np.float32)
        self.rewards = np.zeros((capacity, 1), dtype=np.float32)
        self.not_done = np.zeros((capacity, 1), dtype=np.float32)
        self.ptr = 0
        self.size = 0
        self._rng = np.random.default_rng(seed)
        self._last_obs: np.ndarray | None = None
        self._episode: list[int] = []

    @property
    def num_transitions(self) -> int:
        return self.size

    def start_episode(self, obs: np.ndarray) -> None:
        self._last_obs = np.asarray(obs, dtype=np.float32)
        self._first_obs = self._last_obs
        self._episode = []

    def add(self, action: np.ndarray, reward: float, terminated: bool, next_obs: np.ndarray) -> None:
        if self._last_obs is None:
            raise RuntimeError("call start_episode(obs) after every reset before add()")
        i = self.ptr
        self.obs[i] = self._last_obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.not_done[i] = 0.0 if terminated else 1.0
        self.next_obs[i] = next_obs
        self._last_obs = np.asarray(next_obs, dtype=np.float32)
        self._episode.append(i)
        self.ptr = (self.ptr + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def episode_arrays(self) -> dict[str, np.ndarray]:
        """The current episode (observations once, (T+1, D)) for ReplayStore."""
        if len(self._episode) > self.capacity:
            raise ValueError(f"the current episode ({len(self._episode)} steps) does not fit the replay "
                             f"capacity {self.capacity}; raise replay_capacity")
        idx = np.asarray(self._episode, dtype=np.int64)
        frames = np.concatenate([self._first_obs[None], self.next_obs[idx]])
        return {"frames": frames, "actions": self.actions[idx], "rewards": self.rewards[idx, 0],
                "terminated": self.not_done[idx, 0] == 0}

    add_episode = PixelReplay.add_episode
    rng_state = PixelReplay.rng_state
    set_rng_state = PixelReplay.set_rng_state

    def sample(self, batch_size: int) -> Batch:
        if batch_size > self.size:
            raise ValueError(f"batch size {batch_size} is larger than the filled replay buffer ({self.size})")
        idx = self._rng.integers(0, self.size, size=batch_size)
        t = lambda a: torch.as_tensor(a[idx], device=self.device)  # noqa: E731
        return Batch(t(self.obs), t(self.actions), t(self.rewards), t(self.not_done), t(self.next_obs))
