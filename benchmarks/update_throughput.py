"""Updates per second of one full agent update at CURL's cheetah-run settings, against the reference.

One timed update = sample a batch from a filled replay, random-crop it (100 -> 84), critic step,
every 2nd update an actor + temperature step and the EMA targets, and the agent's aux objective
(``sac``: none; ``curl``; ``mcurl`` with 16 sequences of 32; ``curl_saliency``). Settings are the
reference's cheetah-run ones: frame stack 3, 4 convs x 32 filters, feature dim 50, hidden 1024,
action dim 6, lr 2e-4.

With ``--reference-dir DIR`` holding the reference CURL implementation (MishaLaskin/curl:
``curl_sac.py``, ``encoder.py``, ``utils.py``; not part of this repository), its ``CurlSacAgent`` is
built with the same settings and timed in the same process on the same machine: every trial runs
blocks of 2 updates (one full actor/target cycle) of ours and of the reference's
``update(replay_buffer, L, step)``, alternating which goes first, and the median of the per-trial
ratios is reported because the machine is shared and noisy. The reference samples from its own
``utils.ReplayBuffer`` (obs and next_obs stacks per transition, numpy ``random_crop``), filled with
the same frames as ours. Modules the reference imports but this benchmark does not use (``gym``)
are stubbed when missing; ``scikit-image`` is needed for the reference's crop. Only ``curl`` (and
``sac``, against ``CurlSacAgent`` with its CPC step switched off) have a reference. ``--agent mcurl``
is interleaved the same way with our own ``curl`` agent (same batch, same replay) and reports its rate
against it (``vs_curl``): the price of the M-CURL step in the same run on the same machine.

Results are merged per agent into ``benchmarks/results/update_throughput_<device>.json``; the last
line printed reads ``<agent> batch <B> <device>: <X> updates/s``.

Usage: ``python benchmarks/update_throughput.py --agent curl --batch 128 --device cpu
[--reference-dir /tmp/curl_ref] [--repeats 14] [--updates-per-trial 2]``
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.factory import build_aux  # noqa: E402
from agents.replay import PixelReplay  # noqa: E402
from agents.sac import SACAgent, SACConfig  # noqa: E402
from representations.core.atomic import atomic_write_json  # noqa: E402

AGENTS: dict[str, list[str]] = {"sac": [], "curl": ["curl"], "mcurl": ["mcurl"], "curl_saliency": ["curl_saliency"]}
REFERENCE_AGENTS = {"curl": "CurlSacAgent (cpc_update_freq=1)",
                    "sac": "CurlSacAgent with its CPC step off (cpc_update_freq larger than the steps run)"}
GOAL_RATIO = 1.4
CYCLE = 2  # actor_update_freq = target_update_freq = 2: one block of 2 updates is one full cycle

# CURL's cheetah-run settings (reference train.py defaults + lr 2e-4 for cheetah).
SETTINGS: dict[str, Any] = {
    "task": "cheetah-run", "render_size": 100, "crop_size": 84, "frame_stack": 3, "action_dim": 6,
    "hidden_dim": 1024, "num_conv_layers": 4, "num_filters": 32, "feature_dim": 50, "lr": 2e-4,
    "discount": 0.99, "init_temperature": 0.1, "alpha_lr": 1e-4, "alpha_beta": 0.5, "actor_beta": 0.9,
    "critic_beta": 0.9, "critic_tau": 0.01, "encoder_tau": 0.05, "actor_update_freq": 2,
    "target_update_freq": 2, "curl_latent_dim": 128, "detach_encoder": False, "action_repeat": 4,
}

METHOD = [
    "Timing: time.perf_counter around N consecutive `agent.update()` calls (ours; the agent samples B "
    "from the replay it was built with) and "
    "`CurlSacAgent.update(replay_buffer, L, step)` calls (reference, which samples inside update via "
    "replay_buffer.sample_cpc()), so sampling, cropping, host->device copies, all losses, optimiser "
    "steps and EMA updates are inside the clock on both sides; on CUDA torch.cuda.synchronize() before "
    "every clock read. Both agents live in one process with the same torch thread count "
    "(torch.set_num_threads(2) on CPU); after warm-up updates, each trial alternates blocks of 2 updates "
    "(one actor/target cycle) of ours and of the reference, swapping which goes first, and the figure "
    "reported is the median over trials of (reference s/update) / (our s/update).",
    "Same work: same batch, crop 100->84, 3-frame stacks of 3x100x100 uint8, 4x32 convs, feature dim 50, "
    "hidden 1024, action dim 6, lr 2e-4, tau 0.01/0.05, actor and targets every 2 updates, W of the "
    "bilinear CURL loss 50x50. Both replays hold the same random frames (several 250-step episodes).",
    "Where the difference comes from (read from agents/sac.py, agents/aux.py, agents/augment.py, "
    "agents/replay.py and the reference's curl_sac.py/utils.py, and counted per update under "
    "passes_per_update): "
    "(1) one encoder pass of the anchor crop serves the critic loss and the CURL loss: "
    "SACAgent.critic_loss returns the critic encoder's features with gradient and CURLAux.compute uses "
    "them as the anchor, where the reference encodes obs again in update_cpc (CURL.encode(obs_anchor)); "
    "(2) one backward through the conv stack and one optimiser step for the encoder on the summed "
    "critic + CURL loss (total.backward(); critic_opt.step(); the aux optimiser holds only W), where the "
    "reference runs two backwards (critic loss, then CURL loss) and applies three Adam steps to the "
    "encoder per update: critic_optimizer, then encoder_optimizer and cpc_optimizer with the same CURL "
    "gradient (CURL.parameters() contains critic.encoder, registered as a submodule); "
    "(3) the actor update reuses one no-grad conv pass of the critic encoder (taken after the critic "
    "step) for both the actor head and the Q heads (SACAgent.actor_and_alpha_loss), where the reference "
    "runs the conv stack twice (actor(obs, detach_encoder=True) and critic(obs, pi, detach_encoder=True)). "
    "Net conv work per update for curl: 4.5 batch-forwards and 1 backward (ours) against 6 and 2; for "
    "sac: 3.5 forwards against 4, 1 backward each. "
    "(4) Data path, which is NOT where the CPU speed comes from (see sample_and_crop_ms): our replay "
    "stores each frame once and builds obs and next_obs as views of one (B, k+1, 3, H, W) gather "
    "(PixelReplay._gather), crops are one batched torch gather on the agent's device on uint8 "
    "(agents/augment.random_crop) and pixels stay uint8 until the encoder divides by 255; the reference "
    "copies two 9x100x100 stacks per transition, crops three views with numpy view_as_windows fancy "
    "indexing on the host and converts them to float32 before the copy to the device. On CPU the torch "
    "advanced-indexing crop is slower than the numpy one, so our data path costs more there; the "
    "uint8/on-device path is meant for GPUs (no host crop; uint8 instead of float32 crossing to the "
    "device, or no copy at all when the replay is stored on the GPU). "
    "Semantics differ in one place: ours takes the CURL loss at the pre-step weights together with "
    "the critic loss (one step); the reference takes it after the critic step and the target update.",
    "passes_per_update, over one untimed 2-update cycle: conv_forward_images (forward hooks on every "
    "first conv layer: critic, actor, target encoders), conv_forward_batches (= images / B), "
    "conv_backward_passes (gradient hooks on the first conv weight), optimizer_steps_on_conv_weights "
    "(sum of Adam 'step' counters of every optimiser holding that weight). sample_and_crop_ms: median "
    "of 5 calls of our replay.sample(B) plus the crops one update takes (obs, next_obs, and the key "
    "view for curl/curl_saliency) against the reference's sample_cpc() (sampling, three crops, float32).",
    "sac has no published reference agent; its reference here is CurlSacAgent with cpc_update_freq "
    "larger than the number of steps run, i.e. the same pixel SAC without the CPC step (its "
    "sample_cpc still crops the unused positive view). The reference's logging is a no-op logger "
    "(its histogram logging fires only at step % 10000 == 0, not reached).",
    "mcurl (official defaults: 16 sequences of 32 stacked observations masked before the CNN, cropped "
    "twice, its own encoder step after the SAC update) has no reference here: it is interleaved with our "
    "curl agent at the same batch in the same process, and vs_curl.median_mcurl_over_curl_rate is the "
    "median over trials of (mcurl updates/s) / (curl updates/s).",
    "OpenMP: machine.omp_wait_policy records OMP_WAIT_POLICY. On a shared 2-core machine with other "
    "jobs running, the default (spinning) wait makes 2-thread torch 2-3x slower and very noisy for both "
    "agents; PASSIVE removes most of that penalty. It applies equally to both sides of a comparison.",
]


# ---------------------------------------------------------------------------------------------------
# data


def _stack(frames: np.ndarray, t: int, k: int) -> np.ndarray:
    """The env's frame stack at step t: frames t-k+1..t, repeating frame 0 at the episode start."""
    return np.concatenate([frames[max(0, t - back)] for back in range(k - 1, -1, -1)], axis=0)


def fill_replays(ours: PixelReplay, reference: Any | None, episodes: int, length: int, seed: int) -> int:
    """Write the same random episodes into our replay and (if given) the reference's; returns transitions."""
    k, size, a = SETTINGS["frame_stack"], SETTINGS["render_size"], SETTINGS["action_dim"]
    rng = np.random.default_rng(seed)
    for _ in range(episodes):
        frames = rng.integers(0, 256, (length + 1, 3, size, size), dtype=np.uint8)
        actions = rng.uniform(-1.0, 1.0, (length, a)).astype(np.float32)
        rewards = rng.uniform(0.0, 1.0, length)
        ours.start_episode(_stack(frames, 0, k))
        for t in range(length):
            ours.add(actions[t], float(rewards[t]), False, _stack(frames, t + 1, k))
            if reference is not None:
                reference.add(_stack(frames, t, k), actions[t], float(rewards[t]), _stack(frames, t + 1, k), False)
    return episodes * length


def aux_settings(names: list[str]) -> dict[str, dict[str, Any]]:
    """configs/aux/<name>.yaml with ``${agent.lr}`` resolved to the cheetah-run lr."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        raw = yaml.safe_load((ROOT / "configs" / "aux" / f"{name}.yaml").read_text())
        out[name] = {key: (SETTINGS["lr"] if value == "${agent.lr}" else value) for key, value in raw.items()}
    return out


# ---------------------------------------------------------------------------------------------------
# agents


def build_ours(agent: str, device: torch.device, replay: PixelReplay, batch: int) -> SACAgent:
    s = SETTINGS
    cfg = SACConfig(hidden_dim=s["hidden_dim"], feature_dim=s["feature_dim"], num_conv_layers=s["num_conv_layers"],
                    num_filters=s["num_filters"], discount=s["discount"], init_temperature=s["init_temperature"],
                    alpha_lr=s["alpha_lr"], alpha_beta=s["alpha_beta"], actor_lr=s["lr"], critic_lr=s["lr"],
                    actor_beta=s["actor_beta"], critic_beta=s["critic_beta"], critic_tau=s["critic_tau"],
                    encoder_tau=s["encoder_tau"], actor_update_freq=s["actor_update_freq"],
                    target_update_freq=s["target_update_freq"], image_size=s["crop_size"])
    names = AGENTS[agent]
    obs_shape = (3 * s["frame_stack"], s["crop_size"], s["crop_size"])
    aux = build_aux(names, aux_settings(names), s["feature_dim"], action_repeat=s["action_repeat"],
                    num_conv_layers=s["num_conv_layers"])
    return SACAgent(obs_shape, s["action_dim"], cfg, aux=aux, device=device, pixels=True,
                    generator=torch.Generator(device).manual_seed(0), replay=replay, batch_size=batch)


def _stub(name: str, **attrs: Any) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module


def import_reference(ref_dir: Path | None) -> tuple[Any, Any, str]:
    """(curl_sac module, utils module, note) or (None, None, why not)."""
    if ref_dir is None:
        return None, None, "no --reference-dir given"
    files = [ref_dir / f for f in ("curl_sac.py", "encoder.py", "utils.py")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        return None, None, f"reference files not found: {', '.join(missing)}"
    stubbed = []
    if importlib.util.find_spec("gym") is None:  # utils.FrameStack subclasses gym.Wrapper at import time
        spaces = types.ModuleType("gym.spaces")
        spaces.Box = object  # type: ignore[attr-defined]
        _stub("gym", Wrapper=object, spaces=spaces)
        sys.modules["gym.spaces"] = spaces
        stubbed.append("gym")
    for name in ("utils", "encoder", "curl_sac"):
        if name in sys.modules:
            return None, None, f"a module named {name!r} is already imported; cannot load the reference's"
    sys.path.insert(0, str(ref_dir))
    try:
        utils = importlib.import_module("utils")
        curl_sac = importlib.import_module("curl_sac")
    except Exception as exc:  # noqa: BLE001 - any import failure means: measure ours only
        hint = " (pip install scikit-image)" if isinstance(exc, ImportError) and "skimage" in str(exc) else ""
        return None, None, f"reference in {ref_dir} is not importable: {type(exc).__name__}: {exc}{hint}"
    finally:
        sys.path.remove(str(ref_dir))
    for module in (utils, curl_sac):
        if Path(module.__file__).resolve().parent != ref_dir.resolve():
            return None, None, f"imported {module.__name__} from {module.__file__}, not from {ref_dir}"
    digests = {f.name: hashlib.sha256(f.read_bytes()).hexdigest()[:16] for f in files}
    note = f"loaded from {ref_dir}; stubbed missing modules: {stubbed or 'none'}; sha256[:16] {digests}"
    return curl_sac, utils, note


class _NoLog:
    """The reference's Logger interface, doing nothing (its histograms fire only at step % 10000 == 0)."""

    def log(self, *args: Any, **kwargs: Any) -> None:
        return None

    log_histogram = log_param = log_image = dump = log


def build_reference(curl_sac: Any, agent: str, device: torch.device, total_steps: int) -> Any:
    s = SETTINGS
    cpc_freq = 1 if agent == "curl" else total_steps + 10  # never fires for steps 1..total_steps
    return curl_sac.CurlSacAgent(
        obs_shape=(3 * s["frame_stack"], s["crop_size"], s["crop_size"]), action_shape=(s["action_dim"],),
        device=device, hidden_dim=s["hidden_dim"], discount=s["discount"], init_temperature=s["init_temperature"],
        alpha_lr=s["alpha_lr"], alpha_beta=s["alpha_beta"], actor_lr=s["lr"], actor_beta=s["actor_beta"],
        actor_log_std_min=-10, actor_log_std_max=2, actor_update_freq=s["actor_update_freq"], critic_lr=s["lr"],
        critic_beta=s["critic_beta"], critic_tau=s["critic_tau"], critic_target_update_freq=s["target_update_freq"],
        encoder_type="pixel", encoder_feature_dim=s["feature_dim"], encoder_lr=s["lr"], encoder_tau=s["encoder_tau"],
        num_layers=s["num_conv_layers"], num_filters=s["num_filters"], cpc_update_freq=cpc_freq, log_interval=100,
        detach_encoder=s["detach_encoder"], curl_latent_dim=s["curl_latent_dim"])


# ---------------------------------------------------------------------------------------------------
# timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[], None], n: int, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    _sync(device)
    return time.perf_counter() - start


def _adam_steps(optimizers: list[torch.optim.Optimizer], param: torch.Tensor) -> int:
    """How many optimiser steps (summed over optimisers holding it) ``param`` has received."""
    total = 0
    for opt in optimizers:
        state = opt.state.get(param, {})
        if "step" in state:
            total += int(state["step"])
    return total


def count_passes(modules: list[nn.Module], optimizers: list[torch.optim.Optimizer], step: Callable[[], None],
                 n: int, batch: int, in_channels: int) -> dict[str, float]:
    """Conv-stack work per update: images through any first conv layer (in batches of ``batch``),
    backward passes that reach the first conv weight, and optimiser steps applied to it."""
    firsts: dict[int, nn.Conv2d] = {}
    for module in modules:
        for sub in module.modules():
            if isinstance(sub, nn.Conv2d) and sub.in_channels == in_channels:
                firsts[id(sub)] = sub
    images = [0]
    backwards = [0]

    def on_forward(_mod: nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        images[0] += inputs[0].shape[0]

    def on_grad(grad: torch.Tensor) -> None:
        backwards[0] += 1

    handles = [conv.register_forward_hook(on_forward) for conv in firsts.values()]
    weights = {id(c.weight): c.weight for c in firsts.values() if c.weight.requires_grad}
    handles += [w.register_hook(on_grad) for w in weights.values()]
    steps_before = {key: _adam_steps(optimizers, w) for key, w in weights.items()}
    try:
        for _ in range(n):
            step()
    finally:
        for handle in handles:
            handle.remove()
    steps = max((_adam_steps(optimizers, w) - steps_before[key] for key, w in weights.items()), default=0)
    return {"conv_forward_images": images[0] / n, "conv_forward_batches": images[0] / n / batch,
            "conv_backward_passes": backwards[0] / n, "optimizer_steps_on_conv_weights": steps / n}


def sample_and_crop_ms(fn: Callable[[], Any], device: torch.device, repeats: int = 5) -> float:
    """Median milliseconds of one call (the data path of an update, without the networks)."""
    return round(_median([timed(fn, 1, device) * 1000.0 for _ in range(repeats)]), 2)


def machine_info(device: torch.device, threads: int) -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                            "cpu_count": os.cpu_count(), "torch": torch.__version__, "numpy": np.__version__,
                            "python": platform.python_version(), "torch_threads": threads,
                            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset (OpenMP default: spin)")}
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        if names:
            info["cpu"] = names[0]
    except OSError:
        pass
    try:
        info["load_average_before_trials"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


# ---------------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agent", choices=sorted(AGENTS), required=True)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--reference-dir", type=Path, default=None,
                        help="folder with the reference curl_sac.py, encoder.py, utils.py (kept outside the repo)")
    parser.add_argument("--repeats", type=int, default=7, help="timed trials (the median is reported)")
    parser.add_argument("--updates-per-trial", type=int, default=2, help="updates per side per trial (even)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed updates per side first (even)")
    parser.add_argument("--episodes", type=int, default=4, help="random episodes in the replay")
    parser.add_argument("--episode-length", type=int, default=250, help="agent steps per episode")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None,
                        help="JSON to merge the result into (default benchmarks/results/update_throughput_<device>"
                             ".json; 'none' to skip)")
    args = parser.parse_args(argv)
    for name in ("updates_per_trial", "warmup"):
        value = getattr(args, name)
        if value < 0 or value % CYCLE or (name == "updates_per_trial" and value == 0):
            parser.error(f"--{name.replace('_', '-')} must be a positive multiple of {CYCLE} (one actor/target "
                         f"cycle), got {value}")
    if args.repeats < 1 or args.batch < 2 or args.episodes < 1:
        parser.error("--repeats must be >= 1, --batch >= 2 and --episodes >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device")
    if args.batch > args.episodes * args.episode_length:
        parser.error(f"--batch {args.batch} is larger than the replay ({args.episodes} x {args.episode_length} "
                     "transitions); raise --episodes")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    s = SETTINGS
    k, size = s["frame_stack"], s["render_size"]

    has_ref = args.agent in REFERENCE_AGENTS
    curl_sac = ref_utils = None
    ref_note = f"no reference comparison for {args.agent!r} (only for {sorted(REFERENCE_AGENTS)})"
    if has_ref:
        curl_sac, ref_utils, ref_note = import_reference(args.reference_dir)
        if curl_sac is None:
            print(f"reference not measured: {ref_note}; measuring ours only", flush=True)

    transitions = args.episodes * args.episode_length
    replay = PixelReplay(args.episodes * (args.episode_length + 1), (3, size, size), k, s["action_dim"],
                         device=device, storage_device=device, seed=args.seed)
    ref_buffer = None
    if curl_sac is not None:
        ref_buffer = ref_utils.ReplayBuffer(obs_shape=(3 * k, size, size), action_shape=(s["action_dim"],),
                                            capacity=transitions, batch_size=args.batch, device=device,
                                            image_size=s["crop_size"])
    fill_replays(replay, ref_buffer, args.episodes, args.episode_length, args.seed)

    ours = build_ours(args.agent, device, replay, args.batch)

    def our_step() -> None:
        ours.update()  # the agent samples its own batch from the replay it was built with

    steps_per_side = args.warmup + CYCLE + args.repeats * args.updates_per_trial
    reference = None
    ref_step_counter = [1]  # the reference's update(step) counts from 1 here, so step 2 is its first actor step
    logger = _NoLog()

    def ref_step() -> None:
        reference.update(ref_buffer, logger, ref_step_counter[0])
        ref_step_counter[0] += 1

    if curl_sac is not None:
        reference = build_reference(curl_sac, args.agent, device, steps_per_side)
    companion = build_ours("curl", device, replay, args.batch) if args.agent == "mcurl" else None
    if companion is not None:  # mcurl: interleave with our curl instead of the reference
        reference = companion
        ref_note = "mcurl has no reference implementation here; compared with our own curl agent (vs_curl)"

        def ref_step() -> None:  # noqa: F811 - the comparison side is our curl for mcurl
            companion.update()

    print(f"{args.agent} batch {args.batch} {args.device}: {threads} threads, replay {transitions} transitions, "
          f"{args.repeats} trials x {args.updates_per_trial} updates"
          + (", interleaved with our curl" if companion is not None else
             ", interleaved with the reference" if reference is not None else ""), flush=True)

    # Warm-up, then one counted cycle (also untimed).
    timed(our_step, args.warmup, device)
    if reference is not None:
        timed(ref_step, args.warmup, device)
    in_channels = 3 * k
    our_opts = ours.optimizers()
    our_passes = count_passes([ours], our_opts, our_step, CYCLE, args.batch, in_channels)
    ref_passes = None
    if companion is not None:
        ref_passes = count_passes([companion], companion.optimizers(), ref_step, CYCLE, args.batch, in_channels)
    elif reference is not None:
        ref_modules = [reference.actor, reference.critic, reference.critic_target]
        ref_opts = [reference.actor_optimizer, reference.critic_optimizer, reference.log_alpha_optimizer,
                    reference.encoder_optimizer, reference.cpc_optimizer]
        ref_passes = count_passes(ref_modules, ref_opts, ref_step, CYCLE, args.batch, in_channels)

    # The data path alone: our replay.sample + the crops one update takes of the sampled batch (obs,
    # next_obs, and the key view for the CURL-style aux objectives), against the reference's sample_cpc
    # (three numpy crops and the float32 conversion). Median of 5 calls each.
    key_crops = 1 if args.agent in ("curl", "curl_saliency") else 0

    def our_data() -> None:
        batch = replay.sample(args.batch)
        for images in [batch.obs, batch.next_obs] + [batch.obs] * key_crops:
            ours.crop(images)

    our_data_ms = sample_and_crop_ms(our_data, device)
    ref_data_ms = sample_and_crop_ms(ref_buffer.sample_cpc, device) if ref_buffer is not None else None

    machine = machine_info(device, threads)  # load average taken before the timed trials
    our_times: list[float] = []
    ref_times: list[float] = []
    blocks = args.updates_per_trial // CYCLE
    for trial in range(args.repeats):
        mine = theirs = 0.0
        for block in range(blocks):
            if reference is None:
                mine += timed(our_step, CYCLE, device)
            elif (trial + block) % 2 == 0:
                mine += timed(our_step, CYCLE, device)
                theirs += timed(ref_step, CYCLE, device)
            else:
                theirs += timed(ref_step, CYCLE, device)
                mine += timed(our_step, CYCLE, device)
        our_times.append(mine / args.updates_per_trial)
        line = f"trial {trial + 1}/{args.repeats}: ours {our_times[-1]:.3f} s/update"
        if reference is not None:
            ref_times.append(theirs / args.updates_per_trial)
            other = "curl" if companion is not None else "reference"
            line += f", {other} {ref_times[-1]:.3f} s/update, ratio {ref_times[-1] / our_times[-1]:.2f}"
        print(line, flush=True)

    our_rates = [1.0 / t for t in our_times]
    entry: dict[str, Any] = {
        "agent": args.agent, "aux": AGENTS[args.agent], "batch": args.batch, "device": args.device,
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "replay_transitions": transitions, "episodes": args.episodes, "episode_length": args.episode_length,
        "trials": args.repeats, "updates_per_trial": args.updates_per_trial, "warmup_updates": args.warmup,
        "ours": {"seconds_per_update": [round(t, 4) for t in our_times],
                 "updates_per_s": [round(r, 4) for r in our_rates],
                 "median_updates_per_s": round(_median(our_rates), 4),
                 "passes_per_update": our_passes,
                 "sample_and_crop_ms": our_data_ms},
        "reference": None, "reference_note": ref_note,
    }
    try:
        entry["machine"]["load_average_after_trials"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    if AGENTS[args.agent]:
        entry["aux_settings"] = aux_settings(AGENTS[args.agent])
    ratio = None
    if companion is not None:
        ratios = [o / r for r, o in zip(ref_times, our_times)]  # mcurl rate / curl rate
        ref_rates = [1.0 / t for t in ref_times]
        entry["vs_curl"] = {"curl_seconds_per_update": [round(t, 4) for t in ref_times],
                            "curl_median_updates_per_s": round(_median(ref_rates), 4),
                            "curl_passes_per_update": ref_passes,
                            "mcurl_over_curl_rate_per_trial": [round(1 / r, 3) for r in ratios],
                            "median_mcurl_over_curl_rate": round(_median([1 / r for r in ratios]), 3)}
    elif reference is not None:
        ratios = [r / o for r, o in zip(ref_times, our_times)]
        ref_rates = [1.0 / t for t in ref_times]
        ratio = _median(ratios)
        entry["reference"] = {"implementation": f"MishaLaskin/curl {REFERENCE_AGENTS[args.agent]}",
                              "seconds_per_update": [round(t, 4) for t in ref_times],
                              "updates_per_s": [round(r, 4) for r in ref_rates],
                              "median_updates_per_s": round(_median(ref_rates), 4),
                              "passes_per_update": ref_passes,
                              "sample_and_crop_ms": ref_data_ms}
        entry["ratio_per_trial"] = [round(r, 3) for r in ratios]
        entry["median_ratio"] = round(ratio, 3)
        entry["goal_ratio"] = GOAL_RATIO
        entry["meets_goal"] = bool(ratio >= GOAL_RATIO)

    out = args.output if args.output is not None else ROOT / "benchmarks" / "results" / (
        f"update_throughput_{args.device}.json")
    if str(out) != "none":
        merged: dict[str, Any] = {}
        if out.is_file():
            merged = json.loads(out.read_text())
        merged.update({"benchmark": "update_throughput", "device": args.device, "settings": SETTINGS,
                       "method": METHOD})
        merged.setdefault("agents", {})[args.agent] = entry
        atomic_write_json(out, merged)

    if companion is not None:
        print(f"curl (ours, same run) batch {args.batch} {args.device}: "
              f"{entry['vs_curl']['curl_median_updates_per_s']:.3f} updates/s; mcurl runs at "
              f"{entry['vs_curl']['median_mcurl_over_curl_rate']:.2f}x curl's rate", flush=True)
    elif reference is not None:
        print(f"reference {REFERENCE_AGENTS[args.agent]} batch {args.batch} {args.device}: "
              f"{entry['reference']['median_updates_per_s']:.3f} updates/s; ours/reference ratio "
              f"(median of per-trial ratios) {ratio:.2f}x (goal {GOAL_RATIO}x)", flush=True)
    print(f"{args.agent} batch {args.batch} {args.device}: {entry['ours']['median_updates_per_s']:.3f} updates/s",
          flush=True)
    return entry


if __name__ == "__main__":
    main()
