"""CML: contrastive mask learning for 3D skeleton sequences (Zhang, Sensors 2025, 25(5):1521).

Per batch of sequences (B, C, T, V, M):

- two views by shear + temporal crop-with-padding (``SkeletonAugment``);
- a masked view: view 1 with 1-3 whole body parts hidden (``body_part_mask``, coordinates zeroed on
  every frame); the student encodes it and a decoder predicts the hidden joints' coordinates
  (``masked_reconstruction_loss``, L1 on masked joints only). The decoder upsamples time because
  ST-GCN strides it;
- instance contrast: student projections of view 1, view 2 and the masked view against the EMA
  teacher's projection of the other view, negatives from a MoCo queue of teacher keys;
- cluster contrast: student scores against shared prototypes predict the teacher's balanced
  Sinkhorn-Knopp assignment of the other view (swapped prediction), so instances that fall in
  one cluster are pulled together, not only views of one instance.

loss = w_instance * L_inst + w_cluster * L_cluster + w_reconstruction * L_rec. ``mask_branch=False``
drops the masked view and the decoder (the ablation "without mask branch"); ``w_cluster=0`` the
cluster term. Only ``encoder`` is kept after pretraining.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.skeleton import SkeletonAugment
from ..losses import info_nce_logits, masked_reconstruction_loss, sinkhorn_knopp, swapped_prediction_loss
from ..masking.skeleton import Parts, body_part_mask
from .base import Batch
from .moco import MoCo


class SkeletonDecoder(nn.Module):
    """Per-joint features (B, M, C', T', V) -> coordinates (B, C, T, V, M): upsample time, two convs."""

    def __init__(self, in_dim: int, out_channels: int = 3, hidden_dim: int = 64, kernel_t: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_dim, hidden_dim, (kernel_t, 1), padding=(kernel_t // 2, 0)),
            nn.BatchNorm2d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, out_channels, 1),
        )

    def forward(self, features: torch.Tensor, frames: int) -> torch.Tensor:
        b, m, c, t, v = features.shape
        x = features.reshape(b * m, c, t, v)
        if t != frames:
            x = F.interpolate(x, size=(frames, v), mode="bilinear", align_corners=False)
        y = self.net(x)
        return y.view(b, m, -1, frames, v).permute(0, 2, 3, 4, 1)


class CML(MoCo):
    """Student/teacher contrast at instance and cluster level, with a masked-reconstruction branch."""

    name = "cml"

    def __init__(self, encoder: nn.Module, augment: SkeletonAugment, *, parts: Parts = "ntu",
                 mask_parts: tuple[int, int] = (1, 3), mask_branch: bool = True, num_prototypes: int = 64,
                 cluster_temperature: float = 0.1, sinkhorn_epsilon: float = 0.05, sinkhorn_iterations: int = 3,
                 w_instance: float = 1.0, w_cluster: float = 1.0, w_reconstruction: float = 1.0,
                 decoder_dim: int = 64, reconstruction_loss: str = "l1", **moco_kwargs) -> None:
        super().__init__(encoder, augment, **moco_kwargs)  # type: ignore[arg-type]
        if not hasattr(encoder, "forward_features"):
            raise ValueError("CML needs a skeleton encoder with forward_features (encoder=stgcn)")
        if num_prototypes < 2:
            raise ValueError(f"num_prototypes must be >= 2, got {num_prototypes}")
        for key, value in (("w_instance", w_instance), ("w_cluster", w_cluster),
                           ("w_reconstruction", w_reconstruction)):
            if value < 0:
                raise ValueError(f"{key} must be >= 0, got {value}")
        self.parts, self.mask_parts, self.mask_branch = parts, (int(mask_parts[0]), int(mask_parts[1])), mask_branch
        self.num_joints = int(encoder.num_joints)
        body_part_mask(1, self.mask_parts, parts=parts, num_joints=self.num_joints)  # validates parts and range
        self.cluster_temperature, self.sinkhorn = cluster_temperature, (sinkhorn_epsilon, sinkhorn_iterations)
        self.weights = {"instance": w_instance, "cluster": w_cluster, "reconstruction": w_reconstruction}
        self.reconstruction_loss = reconstruction_loss
        dim = self.head.out_dim
        self.prototypes = nn.Linear(dim, num_prototypes, bias=False)
        self.decoder = SkeletonDecoder(int(encoder.feature_dim), int(encoder.in_channels), decoder_dim) \
            if mask_branch else None

    # -- pieces ------------------------------------------------------------------------------------
    def _scores(self, z: torch.Tensor) -> torch.Tensor:
        """Cosine similarity (B, K) of normalised projections to the normalised prototypes."""
        return z @ F.normalize(self.prototypes.weight, dim=1).t()

    def _student(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised projection, per-joint features (B, M, C', T', V)) of the student."""
        feats = self.encoder.forward_features(x)
        z = self.head(feats.mean(dim=(3, 4)).mean(dim=1))
        return F.normalize(z.float(), dim=1), feats

    @torch.no_grad()
    def _teacher(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.key(x).float(), dim=1)

    def masked_view(self, x: torch.Tensor, rows: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x with the joints of 1-3 body parts zeroed on every frame, joint mask (B, V))."""
        mask = body_part_mask(total, self.mask_parts, parts=self.parts, num_joints=self.num_joints,
                              generator=self.generators["mask"])[rows.cpu()].to(x.device)
        return x.masked_fill(mask[:, None, None, :, None], 0.0), mask

    def _instance(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, labels = info_nce_logits(q, k, temperature=self.temperature, batch_negatives=False,
                                         extra_negatives=self.queue.clone().detach())
        return F.cross_entropy(logits, labels), (logits.detach().argmax(dim=1) == labels).float().mean()

    # -- step --------------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = batch["sequences"].float()
        rows = batch.get("rows")
        rows = torch.arange(x.shape[0]) if rows is None else rows
        total = int(batch.get("global_batch", x.shape[0]))
        gen = self.generators["augment"]
        v1, v2 = self.augment(x, rows, total, gen), self.augment(x, rows, total, gen)
        k1, k2 = self._teacher(v1), self._teacher(v2)
        q1, _ = self._student(v1)
        q2, _ = self._student(v2)
        queries, keys = [q1, q2], [k2, k1]
        metrics: dict[str, torch.Tensor] = {}
        loss_rec = x.new_zeros(())
        if self.mask_branch:
            xm, mask = self.masked_view(v1, rows, total)
            qm, feats = self._student(xm)
            queries.append(qm)
            keys.append(k2)
            pred = self.decoder(feats, x.shape[2])
            joint_mask = mask[:, None, :, None].expand(-1, x.shape[2], -1, x.shape[4])  # (B, T, V, M)
            loss_rec = masked_reconstruction_loss(pred.permute(0, 2, 3, 4, 1), v1.permute(0, 2, 3, 4, 1),
                                                  joint_mask, loss=self.reconstruction_loss)
            metrics["masked_joints"] = mask.float().sum(1).mean().detach()
        inst = [self._instance(q, k) for q, k in zip(queries, keys)]
        loss_inst = torch.stack([loss for loss, _ in inst]).mean()
        loss_cluster = x.new_zeros(())
        if self.weights["cluster"] > 0:
            with torch.no_grad():
                codes = [sinkhorn_knopp(self._scores(k), *self.sinkhorn) for k in keys]
            terms = [swapped_prediction_loss(s, s, temperature=self.cluster_temperature, codes_a=c, codes_b=c)
                     for s, c in zip((self._scores(q) for q in queries), codes)]
            loss_cluster = torch.stack(terms).mean()
            metrics["cluster_used"] = (codes[0].argmax(1).unique().numel() / codes[0].shape[1]) * x.new_ones(())
        self._enqueue(k1)
        loss = (self.weights["instance"] * loss_inst + self.weights["cluster"] * loss_cluster
                + self.weights["reconstruction"] * loss_rec)
        metrics.update(loss_instance=loss_inst.detach(), loss_cluster=loss_cluster.detach(),
                       loss_reconstruction=loss_rec.detach(), acc=inst[0][1].detach(),
                       pos_sim=(q1 * k2).sum(1).mean().detach())
        return loss, metrics
