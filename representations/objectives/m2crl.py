"""M2CRL (Hu et al., NeurIPS 2024): multi-view masked contrastive video pretraining.

Per clip: 2 global and L local views (``MultiViewSampler``). The EMA teacher (VideoViT + DINO head)
sees the unmasked global views; its last-layer [CLS] attention, averaged over heads and frames,
picks each global view's tube mask (``attention_tube_mask``: visible tokens only among the most
attended ``top_fraction``, ``mask_ratio`` masked). Local views get random tube masks. Masked
tubelets become the student's learned mask token and a linear decoder predicts their pixels
(L1 over masked patches, ``masked_reconstruction_loss``). The DINO loss distils the teacher's
global-view distributions into the student's outputs on every view. Views are normalised before
either network sees them (``prepare``), as the official transform normalises every view, so the
reconstruction target is the normalised pixels too. As in the official code the
student's distillation pass is unmasked (``distill_views="unmasked"``); ``"masked"`` reuses the
masked passes instead (one student pass fewer). Loss = w_d * DINO + w_g * rec(global) + w_l * rec(local).

The global masks depend on the teacher attention of each process's own samples, so under DDP the
masks of a rank are drawn from that rank's generator (not indexed from a global-batch draw).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..data.video_views import MultiViewSampler, Views
from ..encoders.video_vit import VideoViT
from ..losses import DINOLoss, masked_reconstruction_loss
from ..masking import attention_tube_mask, random_tube_mask
from ..modules.ema import EMA
from ..modules.heads import DINOHead
from .base import Batch, Objective

GLOBAL_MASKS = ("attention", "random")
DISTILL_VIEWS = ("unmasked", "masked")


def grouped(views: Sequence[torch.Tensor],
            fn: Callable[[torch.Tensor], list[torch.Tensor]]) -> list[list[torch.Tensor]]:
    """Apply ``fn`` once per group of same-shaped views (concatenated on the batch) and split back.

    ``fn`` returns a list of per-sample tensors (B_total, ...); the result is, per view, that list
    cut to the view's rows. Batching equal shapes is what the official MultiCropWrapper does.
    """
    out: list[list[torch.Tensor] | None] = [None] * len(views)
    shapes: dict[tuple[int, ...], list[int]] = {}
    for i, v in enumerate(views):
        shapes.setdefault(tuple(v.shape), []).append(i)
    for members in shapes.values():
        results = fn(torch.cat([views[i] for i in members]))
        for j, i in enumerate(members):
            b = views[i].shape[0]
            out[i] = [r[j * b:(j + 1) * b] for r in results]
    return out  # type: ignore[return-value]


class M2CRL(Objective):
    name = "m2crl"

    def __init__(self, encoder: nn.Module, views: MultiViewSampler, *, out_dim: int = 65536, hidden_dim: int = 2048,
                 bottleneck_dim: int = 256, head_layers: int = 3, teacher_temp: float = 0.04,
                 student_temp: float = 0.1, center_momentum: float = 0.9, momentum: float = 0.996,
                 momentum_final: float = 1.0, mask_ratio: float = 0.9, top_fraction: float = 0.6,
                 local_mask_ratio: float = 0.9, global_mask: str = "attention", distill_views: str = "unmasked",
                 distill_weight: float = 1.0, global_rec_weight: float = 1.0, local_rec_weight: float = 1.0,
                 rec_loss: str = "l1", freeze_last_layer_epochs: float = 1.0, head_norm: str | None = None,
                 **base_kwargs) -> None:
        if not isinstance(encoder, VideoViT) or encoder.mask_token is None:
            raise ValueError("m2crl needs a VideoViT with a mask token (encoder=video_vit, mask_token=true)")
        if not isinstance(views, MultiViewSampler):
            raise ValueError(f"m2crl needs a MultiViewSampler for its views (data=video), got {type(views).__name__}")
        if global_mask not in GLOBAL_MASKS:
            raise ValueError(f"global_mask must be one of {', '.join(GLOBAL_MASKS)}, got {global_mask!r}")
        if distill_views not in DISTILL_VIEWS:
            raise ValueError(f"distill_views must be one of {', '.join(DISTILL_VIEWS)}, got {distill_views!r}")
        for key, value in (("distill_weight", distill_weight), ("global_rec_weight", global_rec_weight),
                           ("local_rec_weight", local_rec_weight)):
            if value < 0:
                raise ValueError(f"{key} must be >= 0, got {value}")
        if len(views.config.global_frames) < 2 and not views.config.local_frames:
            raise ValueError("DINO needs at least two views: configure 2 global views or some local views")
        super().__init__(encoder, **base_kwargs)
        self.views = views
        self.mask_ratio, self.top_fraction, self.local_mask_ratio = mask_ratio, top_fraction, local_mask_ratio
        self.global_mask, self.distill_views, self.rec_loss = global_mask, distill_views, rec_loss
        self.weights = (float(distill_weight), float(global_rec_weight), float(local_rec_weight))
        if freeze_last_layer_epochs < 0:
            raise ValueError(f"freeze_last_layer_epochs must be >= 0, got {freeze_last_layer_epochs}")
        self.freeze_last_layer_epochs = float(freeze_last_layer_epochs)
        self.freeze_steps = 0  # set by configure from the epoch length
        width = encoder.feature_dim
        self.head = DINOHead(width, out_dim, hidden_dim, bottleneck_dim, head_layers, norm=head_norm)
        patch_values = encoder.tubelet_size * encoder.patch_size ** 2 * encoder.patch_embed.in_channels
        self.decoder = nn.Linear(width, patch_values)  # official: 1x1 conv + PixelShuffle = a linear map per token
        self.dino = DINOLoss(out_dim, student_temp=student_temp, teacher_temp=teacher_temp,
                             center_momentum=center_momentum)
        student = nn.ModuleDict({"encoder": self.encoder, "head": self.head})
        object.__setattr__(self, "student", student)  # unregistered: its tensors are already self.encoder / self.head
        self._ema = EMA(student, base=momentum, final=momentum_final, schedule="cosine")
        self.teacher = self._ema.target

    @property
    def export_encoder(self) -> nn.Module:
        """The EMA teacher's encoder: the official downstream code loads the checkpoint's ``teacher``."""
        return self.teacher["encoder"]

    # -- trainer hooks -------------------------------------------------------------------------------
    def configure(self, total_steps: int, steps_per_epoch: int) -> None:
        self._ema.total_steps = total_steps
        self.freeze_steps = round(self.freeze_last_layer_epochs * steps_per_epoch)

    def after_step(self, step: int) -> dict[str, float]:
        return {"momentum": self._ema.update(step)}

    # -- masks ------------------------------------------------------------------------------------------
    def global_masks(self, views: Sequence[torch.Tensor], attention: Sequence[torch.Tensor], rows: torch.Tensor,
                     total: int) -> list[torch.Tensor]:
        """(B, T', N) tube mask per global view: attention-guided, or random (ablation)."""
        gen = self.generators["mask"]
        if self.global_mask == "attention":
            return [attention_tube_mask(a, self.mask_ratio, self.top_fraction, generator=gen) for a in attention]
        return [self._random_masks(v, self.mask_ratio, rows, total) for v in views]

    def _random_masks(self, view: torch.Tensor, ratio: float, rows: torch.Tensor, total: int) -> torch.Tensor:
        steps, h, w = self.encoder.token_grid(view)
        gen = self.generators["mask"]
        mask = random_tube_mask(total, steps, (h, w), ratio, generator=gen, device=gen.device)
        return mask.to(view.device)[rows]

    # -- forward ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def teacher_forward(self, views: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Teacher logits (V, B, K) and last-layer [CLS] attention (B, heads, T', N) of each global view."""
        # the official teacher is never put in eval mode: its backbone's drop-path is active (M2CRL builds
        # teacher and student with drop_path_rate 0.1) and a BatchNorm head uses batch statistics
        self.teacher.train()
        cls, attention = [], []
        for v in views:
            out = self.teacher["encoder"](v, return_attention=True)
            cls.append(out.cls)
            attention.append(out.attention)
        logits = self.teacher["head"](torch.cat(cls))  # one head pass over all global views, as DINO's wrapper
        return logits.view(len(views), -1, logits.shape[-1]), attention

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        clips = batch["clips"]
        rows, total = self.random_rows({**batch, "images": clips})  # the base helper reads the batch size there
        sampled = self.views(clips, self.generators["augment"], rows, total)
        views = Views([self.prepare(v) for v in sampled.globals], [self.prepare(v) for v in sampled.locals])
        w_distill, w_global, w_local = self.weights
        teacher_logits, attention = self.teacher_forward(views.globals)
        metrics: dict[str, torch.Tensor] = {}
        loss = clips.new_zeros((), dtype=torch.float32)
        need_masked = w_global > 0 or w_local > 0 or self.distill_views == "masked"
        masked_cls: list[torch.Tensor] = []
        if need_masked:
            g_masks = self.global_masks(views.globals, attention, rows, total)
            l_masks = [self._random_masks(v, self.local_mask_ratio, rows, total) for v in views.locals]
            rec_g, cls_g = self.reconstruct(views.globals, g_masks)
            rec_l, cls_l = self.reconstruct(views.locals, l_masks)
            masked_cls = cls_g + cls_l
            loss = loss + w_global * rec_g + w_local * rec_l
            metrics.update(rec_global=rec_g.detach(), rec_local=rec_l.detach(),
                           mask_ratio=g_masks[0].float().mean())
        if self.distill_views == "masked":
            student_cls = masked_cls
        else:
            student_cls = [out[0] for out in grouped(list(views.globals) + list(views.locals),
                                                      lambda x: [self.encoder(x)])]
        frozen = int(batch.get("step", self.freeze_steps)) < self.freeze_steps  # prototypes fixed in epoch 1
        student_logits = torch.stack([out[0] for out in grouped(student_cls, lambda c: [self.head(c, frozen)])])
        distill = self.dino(student_logits.float(), teacher_logits.float())
        loss = loss + w_distill * distill
        metrics["dino"] = distill.detach()
        return loss, metrics

    def reconstruct(self, views: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]
                    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Mean over views of the L1 error on masked tubelets' pixels, and each masked view's [CLS] (B, D).

        Same-shaped views run as one batch; every sample masks the same number of tokens, so the
        group's mean over masked patches equals the mean of its views' losses.
        """
        if not views:
            return torch.zeros((), device=self.decoder.weight.device), []
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, v in enumerate(views):
            groups.setdefault(tuple(v.shape), []).append(i)
        total = torch.zeros((), device=self.decoder.weight.device)
        cls: list[torch.Tensor | None] = [None] * len(views)
        for members in groups.values():
            video = torch.cat([views[i] for i in members])
            mask = torch.cat([masks[i] for i in members])
            out = self.encoder(video, mask=mask, return_tokens=True)
            pred = self.decoder(out.tokens).float()
            error = masked_reconstruction_loss(pred, self.encoder.patchify(video).float(), mask.flatten(1),
                                               loss=self.rec_loss)
            total = total + error * len(members)
            b = views[members[0]].shape[0]
            for j, i in enumerate(members):
                cls[i] = out.cls[j * b:(j + 1) * b]
        return total / len(views), cls  # type: ignore[return-value]
