"""Frames/s of ``envs.make_dmc`` pixels against a bare dm_control step + render loop, same run.

Why: the wrapper (action rescale, repeat loop, reward sum, frame-stack copy, info dict) must cost at
most ~5% over the simulator and renderer it drives. Both loops do the same physics steps with the
same random actions and one ``physics.render(h, w, camera_id)`` per agent step; trials alternate
which loop runs first, and the median of the per-trial ratios is reported because the machine is
shared and noisy.

Usage: ``python benchmarks/env_fps.py [--task cheetah-run] [--trials 7] [--agent-steps 200]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402
from representations.core.atomic import atomic_write_json  # noqa: E402

RESULT = Path(__file__).resolve().parent / "results" / "env_fps.json"


def _bare_block(dm_env: Any, actions: np.ndarray, repeat: int, size: int, camera_id: int) -> float:
    """Seconds for ``len(actions)`` agent steps of raw physics stepping plus one render each."""
    physics = dm_env.physics
    n_sub_steps = dm_env._n_sub_steps  # what control.Environment.step passes to physics.step
    start = time.perf_counter()
    for action in actions:
        for _ in range(repeat):
            physics.set_control(action)
            physics.step(n_sub_steps)
        physics.render(size, size, camera_id=camera_id)
    return time.perf_counter() - start


def _wrapper_block(env: envs.DMCEnv, actions: np.ndarray) -> float:
    """Seconds for ``len(actions)`` agent steps through ``make_dmc``."""
    start = time.perf_counter()
    for action in actions:
        env.step(action)
    return time.perf_counter() - start


def _trial(env: envs.DMCEnv, dm_env: Any, actions: np.ndarray, block: int, camera_id: int) -> tuple[float, float]:
    """One episode of each loop, interleaved in blocks of ``block`` agent steps (order alternating),
    so that both see the same bursts of load from other processes. Resets are not timed."""
    env.reset()
    dm_env.reset()
    bare_s = wrapper_s = 0.0
    for i, first in enumerate(range(0, len(actions), block)):
        chunk = actions[first : first + block]
        if i % 2 == 0:
            bare_s += _bare_block(dm_env, chunk, env.action_repeat, env.image_size, camera_id)
            wrapper_s += _wrapper_block(env, chunk)
        else:
            wrapper_s += _wrapper_block(env, chunk)
            bare_s += _bare_block(dm_env, chunk, env.action_repeat, env.image_size, camera_id)
    return bare_s, wrapper_s


def _overhead_without_render(env: envs.DMCEnv, dm_env: Any, actions: np.ndarray, camera_id: int) -> dict:
    """Microseconds per agent step of each loop with ``physics.render`` stubbed by a fixed frame.

    The rendering cost swamps the wrapper's and is the noisiest part on a shared machine; with it
    removed, the wrapper's own Python/numpy cost per agent step is visible directly.
    """
    frame = np.zeros((env.image_size, env.image_size, 3), dtype=np.uint8)
    physics = (env.physics, dm_env.physics)
    for p in physics:
        p.render = lambda *args, **kwargs: frame  # instance attribute shadows the method
    try:
        bare_s, wrapper_s = _trial(env, dm_env, actions, len(actions), camera_id)
    finally:
        for p in physics:
            del p.render
    n = len(actions)
    return {
        "bare_us_per_agent_step": bare_s / n * 1e6,
        "make_dmc_us_per_agent_step": wrapper_s / n * 1e6,
        # includes dm_control's own reward and observation computation, which the bare loop skips
        "make_dmc_minus_bare_us_per_agent_step": (wrapper_s - bare_s) / n * 1e6,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("numpy", "mujoco", "dm-control", "gymnasium"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "missing"
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="cheetah-run")
    parser.add_argument("--image-size", type=int, default=84)
    parser.add_argument("--action-repeat", type=int, default=4)
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--agent-steps", type=int, default=200, help="agent steps per trial and loop")
    parser.add_argument("--block", type=int, default=1, help="agent steps per interleaved block")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)

    repeat, size = args.action_repeat, args.image_size
    env = envs.make_dmc(
        args.task, image_size=size, action_repeat=repeat, seed=0, episode_length=args.agent_steps * repeat
    )
    from dm_control import suite  # after envs: MUJOCO_GL already defaults to egl

    domain, task = args.task.split("-", 1)
    dm_env = suite.load(domain, task, task_kwargs={"random": 0})  # a second, independent simulator
    camera_id = env.camera_id
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1.0, 1.0, size=(args.agent_steps, *env.action_space.shape)).astype(np.float32)
    frames = args.agent_steps * repeat

    _trial(env, dm_env, actions[:20], args.block, camera_id)  # warm-up: GL contexts, caches
    trials = []
    for trial in range(args.trials):
        bare_s, wrapper_s = _trial(env, dm_env, actions, args.block, camera_id)
        row = {
            "bare_fps": frames / bare_s,
            "make_dmc_fps": frames / wrapper_s,
            "ratio": bare_s / wrapper_s,  # make_dmc fps / bare fps
        }
        trials.append(row)
        print(
            f"trial {trial}: bare {row['bare_fps']:.1f} fps, make_dmc {row['make_dmc_fps']:.1f} fps, "
            f"ratio {row['ratio']:.4f}",
            flush=True,
        )

    ratio = statistics.median(t["ratio"] for t in trials)
    no_render = _overhead_without_render(env, dm_env, actions, camera_id)
    render_ms = 1e3 / statistics.median(t["bare_fps"] for t in trials) * repeat
    print(
        f"without rendering: bare {no_render['bare_us_per_agent_step']:.0f} us/step, make_dmc "
        f"{no_render['make_dmc_us_per_agent_step']:.0f} us/step (bare step+render: {render_ms:.1f} ms/step)"
    )
    overhead = (1.0 / ratio - 1.0) * 100.0  # extra wall time per frame, in percent
    result = {
        "benchmark": "env_fps",
        "task": args.task,
        "image_size": size,
        "action_repeat": repeat,
        "frame_stack": env.frame_stack,
        "camera_id": camera_id,
        "agent_steps_per_trial": args.agent_steps,
        "interleave_block_agent_steps": args.block,
        "env_steps_per_trial": frames,
        "machine": {
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "mujoco_gl": os.environ.get("MUJOCO_GL"),
        },
        "versions": _versions(),
        "trials": trials,
        "median_bare_fps": statistics.median(t["bare_fps"] for t in trials),
        "median_make_dmc_fps": statistics.median(t["make_dmc_fps"] for t in trials),
        "median_ratio": ratio,
        "without_render": no_render,
        "overhead_percent": overhead,
        "goal_overhead_percent": 5.0,
        "method": (
            "per trial: one episode of each loop interleaved in blocks (alternating order), resets untimed; "
            "ratio = bare seconds / make_dmc seconds; overhead = 1 / median ratio - 1"
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(f"make_dmc overhead: {overhead:.2f}% (goal <= 5%)")
    return result


if __name__ == "__main__":
    main()
