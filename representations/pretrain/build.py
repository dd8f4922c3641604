"""Turn a composed pretraining config (plain dict) into data, encoder, objective and trainer settings.

Plain-dict in, objects out: usable from hydra, from the benchmark scripts and from tests alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.errors import UserError, as_user_error
from ..core.trainer import TrainerConfig
from ..data import (
    MOCAP_PATH,
    AugmentConfig,
    BatchAugment,
    DataError,
    ImageData,
    SkeletonAugment,
    SkeletonData,
    load_ntu,
    load_splits,
    mocap_windows,
)
from ..data.video import VIDEO_SOURCES, StreamedClips, VideoData, load_video_splits
from ..data.video_views import MultiViewConfig, MultiViewSampler
from ..encoders import build_encoder, load_pretrained
from ..objectives import METHODS, Objective, fill_settings

_META_KEYS = {"name", "objective", "optim", "saliency", "augment"}


SKELETON_SOURCES = ("mocap", "ntu")
SKELETON_METHODS = ("cml",)


def load_skeletons(data_cfg: dict[str, Any], seed: int) -> tuple[SkeletonData, SkeletonData]:
    """(train, test) skeleton windows / sequences of a ``mocap`` or ``ntu`` data config."""
    if data_cfg["source"] == "mocap":
        kwargs = {k: data_cfg[k] for k in ("window", "train_windows", "test_windows", "test_fraction")
                  if data_cfg.get(k) is not None}
        train, test = mocap_windows(data_cfg.get("path") or MOCAP_PATH, **kwargs)
    else:
        if not data_cfg.get("path"):
            raise DataError("data=ntu needs data.path (a folder of .skeleton files or an (N, 3, T, 25, M) .npy)")
        train, test = load_ntu(
            data_cfg["path"], label_path=data_cfg.get("label_path"), test_path=data_cfg.get("test_path"),
            test_label_path=data_cfg.get("test_label_path"), benchmark=str(data_cfg.get("benchmark", "xsub")),
            frames=data_cfg.get("frames"), max_frames=int(data_cfg.get("max_frames", 300)),
            max_bodies=int(data_cfg.get("max_bodies", 2)))
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"data={data_cfg['name']}: the train or test split is empty "
                        f"({len(train)} / {len(test)} sequences)")
    return train.limit(data_cfg.get("train_limit"), seed), test.limit(data_cfg.get("test_limit"), seed + 1)


def load_data(data_cfg: dict[str, Any], seed: int) -> (
        tuple[ImageData, ImageData] | tuple[SkeletonData, SkeletonData]
        | tuple[VideoData | StreamedClips, VideoData]):
    """(train, test) data of a data config; DataError with one clear line on bad input."""
    if data_cfg["source"] in SKELETON_SOURCES:
        return load_skeletons(data_cfg, seed)
    if str(data_cfg["source"]) in VIDEO_SOURCES:
        return load_video_splits(
            str(data_cfg["source"]), path=data_cfg.get("path"), test_path=data_cfg.get("test_path"),
            root=data_cfg.get("root"), frames=int(data_cfg.get("frames") or 8),
            size=int(data_cfg.get("image_size") or 32), test_fraction=float(data_cfg.get("test_fraction", 0.2)),
            seed=seed, train_limit=data_cfg.get("train_limit"), test_limit=data_cfg.get("test_limit"),
            stream=bool(data_cfg.get("stream", False)), workers=int(data_cfg.get("decode_workers") or 4),
        )
    return load_splits(
        str(data_cfg["source"]), root=data_cfg.get("root"), path=data_cfg.get("path"),
        test_path=data_cfg.get("test_path"), image_size=data_cfg.get("image_size"),
        channels=int(data_cfg.get("channels") or 3), test_fraction=float(data_cfg.get("test_fraction", 0.2)),
        seed=seed, train_limit=data_cfg.get("train_limit"), test_limit=data_cfg.get("test_limit"),
    )


def build_augment(data_cfg: dict[str, Any], image_size: int) -> BatchAugment | MultiViewSampler:
    """The data's augmentation; video data with a ``views`` block gets the multi-view clip sampler."""
    with as_user_error(TypeError, ValueError, prefix=f"data={data_cfg.get('name')}: "):  # user config values
        if data_cfg.get("views"):
            return MultiViewSampler(MultiViewConfig(**dict(data_cfg["views"])))
        aug = dict(data_cfg.get("augment") or {})
        for key in ("scale", "ratio", "blur_sigma"):
            if key in aug:
                aug[key] = tuple(float(v) for v in aug[key])
        return BatchAugment(AugmentConfig(size=int(data_cfg.get("image_size") or image_size), **aug))


def build_model_encoder(encoder_cfg: dict[str, Any], method_cfg: dict[str, Any], channels: int,
                        image_size: int) -> nn.Module:
    """The online encoder, sized for the data (in_channels, image_size); micl gets its official ViT
    settings (one shared [CLS], fixed sin-cos positions)."""
    kwargs = {k: v for k, v in encoder_cfg.items() if k != "name"}
    name = str(encoder_cfg["name"])
    kwargs.update(in_channels=channels, image_size=image_size)
    if method_cfg["objective"] == "micl":
        if name != "vit":
            raise UserError(f"method micl needs encoder=vit, got encoder={name}")
        kwargs.update(num_cls=1, positions="sincos")
    if method_cfg["objective"] == "m2crl":
        if name != "video_vit":
            raise UserError(f"method m2crl needs encoder=video_vit, got encoder={name}")
        kwargs["mask_token"] = True
    for key in ("widths", "blocks"):
        if key in kwargs:
            kwargs[key] = [int(v) for v in kwargs[key]]
    try:
        return build_encoder(name, **kwargs)
    except TypeError as err:
        raise UserError(f"encoder {name}: {err}") from None


def initialise_encoder(encoder: nn.Module, source: str | Path) -> None:
    """Load a saved ``encoder.pt`` into the freshly built encoder: continued pretraining, as every
    official M2CRL run starts from SVT's self-supervised Kinetics-400 checkpoint."""
    path = Path(source)
    if not path.is_file():
        raise UserError(f"init: no encoder file at {path} (give a saved encoder.pt, or init=null)")
    with as_user_error(ValueError, prefix="init: "):
        saved = load_pretrained(path)
    try:
        encoder.load_state_dict(saved.state_dict())
    except RuntimeError:
        raise UserError(f"init: {path} holds a {type(saved).__name__} whose weights do not fit this "
                        f"{type(encoder).__name__} (check the encoder.* settings)") from None


def build_skeleton_augment(data_cfg: dict[str, Any]) -> SkeletonAugment:
    aug = dict(data_cfg.get("augment") or {})
    with as_user_error(ValueError, prefix=f"data={data_cfg.get('name')}: "):
        return SkeletonAugment(shear=float(aug.get("shear", 0.5)), padding_ratio=int(aug.get("padding_ratio", 6)))


def build_skeleton_encoder(encoder_cfg: dict[str, Any], method_cfg: dict[str, Any], data: SkeletonData) -> nn.Module:
    """ST-GCN sized for the data: coordinates, joints, persons and graph come from the sequences."""
    name = str(encoder_cfg["name"])
    if name != "stgcn":
        raise UserError(f"skeleton data needs encoder=stgcn, got encoder={name}")
    if method_cfg["objective"] not in SKELETON_METHODS:
        raise UserError(f"method {method_cfg['name']} trains on images; skeleton data needs method=cml")
    kwargs = {k: v for k, v in encoder_cfg.items() if k != "name"}
    for key in ("channels", "strides"):
        if kwargs.get(key) is not None:
            kwargs[key] = [int(v) for v in kwargs[key]]
    kwargs.update(in_channels=data.channels, num_joints=data.joints, num_persons=data.persons, graph=data.layout)
    try:
        return build_encoder(name, **kwargs)
    except TypeError as err:
        raise UserError(f"encoder {name}: {err}") from None


def _saliency_encoder(method_cfg: dict[str, Any], device: torch.device) -> nn.Module | None:
    source = (method_cfg.get("saliency") or {}).get("network")
    if source is None:
        return None
    path = Path(str(source))
    if not path.is_file():
        raise UserError(f"saliency network not found: {path} (method.saliency.network=null uses the key "
                        "encoder, or give a saved encoder.pt)")
    return load_pretrained(path).to(device)


def build_objective(method_cfg: dict[str, Any], encoder: nn.Module, augment: BatchAugment | SkeletonAugment,
                    generators: dict[str, torch.Generator], device: torch.device,
                    extra: dict[str, Any] | None = None) -> Objective:
    """Instantiate the method named by ``method.objective`` with its config keys (and ``extra``) as kwargs."""
    kind = str(method_cfg["objective"])
    if kind not in METHODS:
        raise UserError(f"unknown method {kind!r}; available: {', '.join(METHODS)}")
    kwargs = {k: v for k, v in method_cfg.items() if k not in _META_KEYS}
    kwargs.update(extra or {})
    if isinstance(kwargs.get("mask_parts"), (list, tuple)):
        kwargs["mask_parts"] = tuple(int(v) for v in kwargs["mask_parts"])
    for key in ("mask_ratio", "hard_ratio"):
        if isinstance(kwargs.get(key), (list, tuple)):
            kwargs[key] = tuple(float(v) for v in kwargs[key])
    if kind == "moco_saliency":
        kwargs["saliency_encoder"] = _saliency_encoder(method_cfg, device)
        kwargs["query_saliency"] = str((method_cfg.get("saliency") or {}).get("query", "direct"))
    if kind == "micl" and not method_cfg.get("augment", True):
        augment = None  # type: ignore[assignment]
    with as_user_error(TypeError, ValueError, prefix=f"method {kind}: "):  # constructors validate the config
        return METHODS[kind](encoder, augment, generators=generators, **kwargs)


def input_filter_of(method_cfg: dict[str, Any]) -> str:
    """The input domain a method trains in (evaluation must use the same)."""
    fill = method_cfg.get("fill")
    return fill_settings(str(fill))[0] if fill is not None else "none"


def trainer_config(cfg: dict[str, Any]) -> TrainerConfig:
    """Loop settings: top-level overrides win over the method's ``optim`` defaults."""
    optim = dict(cfg["method"].get("optim") or {})

    def pick(top: str, key: str, default: Any) -> Any:
        value = cfg.get(top)
        return value if value is not None else optim.get(key, default)

    # DINO-style linear scaling: lr is per lr_reference_batch samples (the method's lr and an lr override alike)
    reference = optim.get("lr_reference_batch")
    lr_batch_scale = 1.0 if reference is None else int(cfg["batch_size"]) / float(reference)
    grad_clip = pick("grad_clip", "grad_clip", None)
    steps, epochs = cfg.get("steps"), cfg.get("epochs")
    if epochs is not None and steps is not None:
        steps = None  # epochs given explicitly wins over the default step budget
    return TrainerConfig(
        steps=None if steps is None else int(steps), epochs=None if epochs is None else int(epochs),
        batch_size=int(cfg["batch_size"]), optimizer=str(pick("optimizer", "name", "sgd")),
        lr=float(pick("lr", "lr", 0.06)) * lr_batch_scale, momentum=float(optim.get("momentum", 0.9)),
        weight_decay=float(pick("weight_decay", "weight_decay", 5e-4)),
        weight_decay_final=None if optim.get("weight_decay_final") is None else float(optim["weight_decay_final"]),
        no_decay_1d=bool(optim.get("no_decay_1d", False)), schedule=str(optim.get("schedule", "cosine")),
        warmup_steps=int(pick("warmup_steps", "warmup_steps", 0)), final_lr=float(optim.get("final_lr", 0.0)),
        grad_clip=None if grad_clip is None else float(grad_clip),
        log_every=int(cfg.get("log_every", 50)), eval_every=int(cfg.get("eval_every", 0)),
        checkpoint_every=int(cfg.get("checkpoint_every", 0)), keep_checkpoints=int(cfg.get("keep_checkpoints", 3)),
        progress=bool(cfg.get("progress", True)), sync_bn=bool(cfg.get("sync_bn", False)),
    )


MAX_UPSCALE = 4  # largest crop size, as a multiple of the images' side


def check_data(train: ImageData, data_cfg: dict[str, Any]) -> tuple[int, int]:
    """(channels, crop size) of the data, checked against the config."""
    channels = train.channels
    want = data_cfg.get("channels")
    if want is not None and int(want) != channels:
        raise DataError(f"data.channels={want} but the images have {channels} channels")
    native = min(train.sample_shape[-2:])
    size = int(data_cfg.get("image_size") or native)
    if not 1 <= size <= MAX_UPSCALE * native:  # views are crops of the images: bound before any batch is made
        raise DataError(f"data.image_size={size} must be between 1 and {MAX_UPSCALE}x the images' {native} px "
                        f"side (<= {MAX_UPSCALE * native})")
    return channels, size
