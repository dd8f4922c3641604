"""Spatial-temporal graph convolution network (ST-GCN) for skeleton sequences (CML pretraining).

Input layout (B, C, T, V, M): channels (x, y, z), frames, joints, persons. Each layer is a graph
convolution over joints (one 1x1 conv per adjacency partition, mixed by the normalised adjacency)
followed by a temporal convolution over frames, with a residual path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

NTU_JOINT_NAMES: tuple[str, ...] = (
    "spine_base", "spine_mid", "neck", "head",                                   # 0-3
    "left_shoulder", "left_elbow", "left_wrist", "left_hand",                    # 4-7
    "right_shoulder", "right_elbow", "right_wrist", "right_hand",                # 8-11
    "left_hip", "left_knee", "left_ankle", "left_foot",                          # 12-15
    "right_hip", "right_knee", "right_ankle", "right_foot",                      # 16-19
    "spine_shoulder",                                                            # 20
    "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb",              # 21-24
)

# The 24 bones of the NTU RGB+D Kinect v2 skeleton, 0-based joint indices (names above). The hand
# chain follows the usual ST-GCN layout: hand tip - thumb - hand.
NTU_BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 20), (2, 20), (3, 2),            # spine, neck, head
    (4, 20), (5, 4), (6, 5), (7, 6),             # left arm
    (8, 20), (9, 8), (10, 9), (11, 10),          # right arm
    (12, 0), (13, 12), (14, 13), (15, 14),       # left leg
    (16, 0), (17, 16), (18, 17), (19, 18),       # right leg
    (21, 22), (22, 7), (23, 24), (24, 11),       # hand tips and thumbs
)
NTU_CENTER = 20  # spine_shoulder: the root of ST-GCN's spatial partitioning on NTU

# The DeepMimic humanoid of pybullet_data (humanoid.urdf): its 15 link origins plus three fixed
# points on rigid links (head centre on the neck link, foot centre on each ankle link), as
# written by scripts/convert_mocap.py into representations/data/humanoid_mocap.npz.
HUMANOID_JOINT_NAMES: tuple[str, ...] = (
    "root", "chest", "neck", "head",                                             # 0-3
    "right_hip", "right_knee", "right_ankle", "right_foot",                      # 4-7
    "right_shoulder", "right_elbow", "right_wrist",                              # 8-10
    "left_hip", "left_knee", "left_ankle", "left_foot",                          # 11-14
    "left_shoulder", "left_elbow", "left_wrist",                                 # 15-17
)
HUMANOID_BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3),                      # spine, neck, head
    (0, 4), (4, 5), (5, 6), (6, 7),              # right leg
    (1, 8), (8, 9), (9, 10),                     # right arm
    (0, 11), (11, 12), (12, 13), (13, 14),       # left leg
    (1, 15), (15, 16), (16, 17),                 # left arm
)
HUMANOID_CENTER = 1  # chest: where arms, neck and spine meet, as spine_shoulder on NTU

# name -> (bones, number of joints, centre joint of the spatial partitioning)
SKELETON_GRAPHS: dict[str, tuple[tuple[tuple[int, int], ...], int, int]] = {
    "ntu": (NTU_BONES, 25, NTU_CENTER),
    "humanoid": (HUMANOID_BONES, 18, HUMANOID_CENTER),
}


def skeleton_adjacency(name: str) -> torch.Tensor:
    """Symmetric 0/1 (V, V) adjacency of a built-in skeleton ("ntu", "humanoid"), no self loops."""
    if name not in SKELETON_GRAPHS:
        raise ValueError(f"unknown built-in graph {name!r}; use one of {', '.join(SKELETON_GRAPHS)} "
                         f"or pass an adjacency matrix")
    bones, joints, _ = SKELETON_GRAPHS[name]
    adj = torch.zeros(joints, joints)
    for i, j in bones:
        adj[i, j] = adj[j, i] = 1.0
    return adj


def ntu_rgbd_adjacency() -> torch.Tensor:
    """Symmetric 0/1 (25, 25) adjacency of the NTU skeleton (no self loops)."""
    return skeleton_adjacency("ntu")


def normalize_adjacency(adj: torch.Tensor, mode: str = "row") -> torch.Tensor:
    """Entry [i, j] weights joint j's message to joint i.

    "row": D^-1 A, each joint averages its neighbourhood (ST-GCN's choice); "symmetric":
    D^-1/2 A D^-1/2 (Kipf & Welling). Isolated joints keep zero rows.
    """
    deg = adj.sum(dim=1)
    inv = torch.where(deg > 0, 1.0 / deg.clamp(min=1e-12), torch.zeros_like(deg))
    if mode == "row":
        return inv[:, None] * adj
    if mode == "symmetric":
        root = inv.sqrt()
        return root[:, None] * adj * root[None, :]
    raise ValueError(f"normalisation must be 'row' or 'symmetric', got {mode!r}")


def hop_distance(adj: torch.Tensor) -> torch.Tensor:
    """Shortest path length between joints (inf where unreachable), by repeated reachability."""
    v = adj.shape[0]
    reach = torch.eye(v, dtype=torch.bool) | (adj > 0)
    dist = torch.full((v, v), float("inf"))
    dist[torch.eye(v, dtype=torch.bool)] = 0.0
    current = torch.eye(v, dtype=torch.bool)
    for hops in range(1, v):
        nxt = (current.float() @ reach.float()) > 0
        dist[nxt & ~current] = float(hops)
        if torch.equal(nxt, current):
            break
        current = nxt
    return dist


def graph_partitions(
    adj: torch.Tensor, strategy: str = "spatial", center: int = 0, normalization: str = "row"
) -> torch.Tensor:
    """(K, V, V) partitions of the normalised A + I (entry [i, j]: message from j to i).

    "uniform": K=1, the whole neighbourhood. "distance": K=2, self and neighbours. "spatial" (ST-GCN):
    K=3, self, neighbours closer to ``center`` and neighbours farther from it.
    """
    adj = (adj > 0).float()
    v = adj.shape[0]
    eye = torch.eye(v)
    if strategy == "uniform":
        parts = [adj + eye]
    elif strategy == "distance":
        parts = [eye, adj]
    elif strategy == "spatial":
        dist = hop_distance(adj)[center]
        # entry [i, j]: joint j passes its features to joint i; split by j's distance vs i's.
        closer = adj * (dist[None, :] < dist[:, None]).float()
        farther = adj * (dist[None, :] > dist[:, None]).float()
        parts = [eye + adj * (dist[None, :] == dist[:, None]).float(), closer, farther]
    else:
        raise ValueError(f"partition strategy must be 'uniform', 'distance' or 'spatial', got {strategy!r}")
    norm = normalize_adjacency(adj + eye, normalization)
    return torch.stack([p * norm for p in parts])


class STGCNBlock(nn.Module):
    """Graph conv over joints, then a (kt x 1) temporal conv, plus a residual; features (N, C, T, V)."""

    def __init__(self, in_ch: int, out_ch: int, partitions: int, kernel_t: int, stride: int,
                 dropout: float, residual: bool = True) -> None:
        super().__init__()
        self.partitions = partitions
        self.gcn = nn.Conv2d(in_ch, out_ch * partitions, 1)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, (kernel_t, 1), (stride, 1), ((kernel_t - 1) // 2, 0)),
            nn.BatchNorm2d(out_ch),
            nn.Dropout(dropout),
        )
        if not residual:
            self.residual: nn.Module | None = None
        elif in_ch == out_ch and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, (stride, 1)), nn.BatchNorm2d(out_ch))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        y = self.gcn(x).view(n, self.partitions, -1, t, v)
        y = torch.einsum("nkctw,kvw->nctv", y, adj)
        y = self.tcn(y)
        return self.relu(y if self.residual is None else y + self.residual(x))


class STGCN(nn.Module):
    """Skeletons (B, C, T, V, M) -> pooled feature (B, channels[-1]); persons are averaged.

    ``graph`` is a built-in skeleton ("ntu", "humanoid") or a (V, V) adjacency (nested lists or
    tensor). Temporal stride 2 is applied where the width grows (except in the first layer) unless ``strides`` is given.
    ``partition`` / ``normalization`` choose how A + I is split and scaled (see ``graph_partitions``);
    ``edge_importance`` learns a per-layer mask on the adjacency, as in ST-GCN.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_joints: int = 25,
        num_persons: int = 2,
        channels: Sequence[int] = (64, 64, 64, 128, 128, 256, 256),
        strides: Sequence[int] | None = None,
        kernel_t: int = 9,
        graph: str | Sequence[Sequence[float]] | torch.Tensor = "ntu",
        partition: str = "spatial",
        normalization: str = "row",
        center: int | None = None,
        edge_importance: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(graph, str):
            adj = skeleton_adjacency(graph)
            center = SKELETON_GRAPHS[graph][2] if center is None else center
            graph_kw: str | list[list[float]] = graph
        else:
            adj = torch.as_tensor(graph, dtype=torch.float32)
            graph_kw = adj.tolist()
            center = 0 if center is None else center
        if adj.shape != (num_joints, num_joints):
            raise ValueError(f"adjacency is {tuple(adj.shape)} but num_joints is {num_joints}")
        if not 0 <= center < num_joints:
            raise ValueError(f"center joint {center} is outside 0..{num_joints - 1}")
        if not torch.equal(adj, adj.t()):
            raise ValueError("the skeleton adjacency must be symmetric (undirected bones)")
        channels = [int(c) for c in channels]
        if not channels:
            raise ValueError("STGCN needs at least one layer in channels")
        if strides is None:
            strides = [2 if i > 0 and channels[i] > channels[i - 1] else 1 for i in range(len(channels))]
        strides = [int(s) for s in strides]
        if len(strides) != len(channels):
            raise ValueError(f"strides {strides} must match channels {channels} in length")
        if kernel_t % 2 == 0:
            raise ValueError(f"kernel_t must be odd to keep frames centred, got {kernel_t}")
        self.init_kwargs = dict(
            in_channels=in_channels, num_joints=num_joints, num_persons=num_persons, channels=channels,
            strides=strides, kernel_t=kernel_t, graph=graph_kw, partition=partition,
            normalization=normalization, center=center,
            edge_importance=edge_importance, dropout=dropout,
        )
        self.register_buffer("adjacency", graph_partitions(adj, partition, center, normalization))
        k = self.adjacency.shape[0]
        self.num_joints, self.num_persons, self.in_channels = num_joints, num_persons, in_channels
        self.data_bn = nn.BatchNorm1d(in_channels * num_joints * num_persons)
        widths = [in_channels] + channels
        self.layers = nn.ModuleList(
            STGCNBlock(widths[i], widths[i + 1], k, kernel_t, strides[i], dropout, residual=i > 0)
            for i in range(len(channels))
        )
        self.edge_importance = nn.ParameterList(
            nn.Parameter(torch.ones_like(self.adjacency)) for _ in self.layers
        ) if edge_importance else None
        self.feature_dim = channels[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-joint features (B, M, C', T', V) before pooling (for reconstruction branches)."""
        if x.dim() != 5:
            raise ValueError(f"STGCN expects (B, C, T, V, M) skeletons, got {tuple(x.shape)}")
        b, c, t, v, m = x.shape
        if (c, v, m) != (self.in_channels, self.num_joints, self.num_persons):
            raise ValueError(
                f"STGCN built for C={self.in_channels}, V={self.num_joints}, M={self.num_persons}; "
                f"got C={c}, V={v}, M={m}"
            )
        x = x.float().permute(0, 4, 3, 1, 2).reshape(b, m * v * c, t)
        x = self.data_bn(x)
        x = x.view(b, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(b * m, c, t, v)
        for i, layer in enumerate(self.layers):
            adj = self.adjacency if self.edge_importance is None else self.adjacency * self.edge_importance[i]
            x = layer(x, adj)
        return x.view(b, m, *x.shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).mean(dim=(3, 4)).mean(dim=1)
