"""LivePortrait keypoint maths: head pose, rotation, transform, relative composition, hull multiplier, stitching.

Everything is batched. The reference runs with batch 1 and leans on broadcasting ((1,3) translations, (1,1) scales);
here a source batch of 1 broadcasts against N driving frames, and a source batch of N pairs with N frames, so a whole
window of frames is composed in one call. Per-source values (x_s, the frame-0 composition, the hull multiplier, the
lip-normalisation delta) are computed once by :class:`KeypointComposer`.

Conventions (LivePortrait's): keypoints are row vectors rotated as ``x @ R`` with ``R = (Rz Ry Rx)^T``;
angles are degrees; ``t_z`` is always dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

NUM_BINS = 66
LIP_KEYPOINTS: tuple[int, ...] = (6, 12, 14, 17, 19, 20)
EYE_KEYPOINTS: tuple[int, ...] = (11, 13, 15, 16, 18)
REGIONS = ("all", "exp", "pose", "lip", "eyes")
DRIVING_OPTIONS = ("expression-friendly", "pose-friendly")


# ---------------------------------------------------------------------------------------------------------------------
# Pose, rotation, transform


def headpose_to_degrees(pred: torch.Tensor) -> torch.Tensor:
    """(B,66) bin logits -> (B,1) degrees as the softmax expectation ``3*E[bin] - 97.5``.

    Anything whose second dim is not 66 is taken to be degrees already and returned unchanged, so calling this
    twice is harmless (the reference relies on that).
    """
    if pred.ndim < 2 or pred.shape[1] != NUM_BINS:
        return pred
    prob = torch.softmax(pred, dim=1)
    idx = torch.arange(NUM_BINS, dtype=prob.dtype, device=prob.device)
    return ((prob * idx).sum(dim=1) * 3 - 97.5)[:, None]


def rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Degrees (B,) or (B,1) -> (B,3,3) ``R = (Rz Ry Rx)^T``, the transposed matrix keypoint rows are multiplied by."""
    x = pitch.reshape(-1) / 180 * np.pi
    y = yaw.reshape(-1) / 180 * np.pi
    z = roll.reshape(-1) / 180 * np.pi
    b = x.shape[0]
    one = torch.ones_like(x)
    zero = torch.zeros_like(x)
    cx, sx, cy, sy, cz, sz = torch.cos(x), torch.sin(x), torch.cos(y), torch.sin(y), torch.cos(z), torch.sin(z)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], dim=1).reshape(b, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], dim=1).reshape(b, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], dim=1).reshape(b, 3, 3)
    return (rz @ ry @ rx).transpose(1, 2)


def rotation_angles(R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B,3,3) transposed rotations -> (pitch, yaw, roll) (B,1) degrees, the inverse of :func:`rotation_matrix`
    for |yaw| < 90 degrees (``R^T = Rz Ry Rx``: yaw from its [2,0] entry, pitch and roll from atan2 pairs)."""
    m = R.reshape(-1, 3, 3).transpose(1, 2).double()
    yaw = torch.asin((-m[:, 2, 0]).clamp(-1.0, 1.0))
    pitch = torch.atan2(m[:, 2, 1], m[:, 2, 2])
    roll = torch.atan2(m[:, 1, 0], m[:, 0, 0])
    return tuple((a * 180 / np.pi).to(R.dtype).reshape(-1, 1) for a in (pitch, yaw, roll))


def _as_points(x: torch.Tensor) -> torch.Tensor:
    """(B,63) or (B,21,3) -> (B,21,3)."""
    return x.reshape(x.shape[0], -1, 3)


def transform_keypoints(
    kp: torch.Tensor, exp: torch.Tensor, scale: torch.Tensor, t: torch.Tensor, R: torch.Tensor
) -> torch.Tensor:
    """``scale * (kp @ R + exp)`` then ``+ t`` on x and y only (Eq. 2 of the paper; t_z is ignored)."""
    x = (_as_points(kp) @ R + _as_points(exp)) * scale.reshape(-1, 1, 1)
    xy = x[..., 0:2] + t.reshape(t.shape[0], 1, -1)[..., 0:2]
    return torch.cat([xy, x[..., 2:3]], dim=-1)


@dataclass
class KeypointInfo:
    """What M says about one image, ready for composition: canonical kp, expression, scale, t, angles and R."""

    kp: torch.Tensor  # (B,21,3) canonical keypoints
    exp: torch.Tensor  # (B,21,3) expression deformation
    scale: torch.Tensor  # (B,1)
    t: torch.Tensor  # (B,3)
    pitch: torch.Tensor  # (B,1) degrees
    yaw: torch.Tensor  # (B,1) degrees
    roll: torch.Tensor  # (B,1) degrees
    R: torch.Tensor  # (B,3,3) transposed convention

    @property
    def batch_size(self) -> int:
        return self.kp.shape[0]

    def transformed(self) -> torch.Tensor:
        """x = scale (kp R + exp) + t_xy: the implicit keypoints of this image (x_s for a source)."""
        return transform_keypoints(self.kp, self.exp, self.scale, self.t, self.R)

    def to(self, *args: Any, **kwargs: Any) -> KeypointInfo:
        return KeypointInfo(**{k: v.to(*args, **kwargs) for k, v in self.__dict__.items()})


def keypoint_info_from_heads(raw: Mapping[str, torch.Tensor]) -> KeypointInfo:
    """M's raw heads (``pitch/yaw/roll`` logits, ``t``, ``exp``, ``kp``, ``scale``) -> :class:`KeypointInfo`.

    Heads are cast to fp32 first, as the official wrapper does after autocast, because the keypoint maths is fp32.
    """
    heads = {k: v.float() for k, v in raw.items()}
    pitch = headpose_to_degrees(heads["pitch"]).reshape(-1, 1)
    yaw = headpose_to_degrees(heads["yaw"]).reshape(-1, 1)
    roll = headpose_to_degrees(heads["roll"]).reshape(-1, 1)
    b = pitch.shape[0]
    return KeypointInfo(
        kp=heads["kp"].reshape(b, -1, 3),
        exp=heads["exp"].reshape(b, -1, 3),
        scale=heads["scale"].reshape(b, 1),
        t=heads["t"].reshape(b, 3),
        pitch=pitch,
        yaw=yaw,
        roll=roll,
        R=rotation_matrix(pitch, yaw, roll),
    )


@dataclass
class MotionFrames:
    """Driving motion of N frames (JoyVASA's de-normalised output, or M on driving video frames)."""

    exp: torch.Tensor  # (N,21,3)
    scale: torch.Tensor  # (N,1)
    t: torch.Tensor  # (N,3)
    R: torch.Tensor  # (N,3,3)

    def __len__(self) -> int:
        return self.exp.shape[0]

    def __getitem__(self, index: int | slice | torch.Tensor) -> MotionFrames:
        """Frames ``index`` as a batch (an int keeps a batch dim of 1)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return MotionFrames(self.exp[index], self.scale[index], self.t[index], self.R[index])


# ---------------------------------------------------------------------------------------------------------------------
# Relative composition


@dataclass
class ComposedKeypoints:
    """The shared per-frame composition: the new rotation, expression, scale, t and keypoints."""

    R: torch.Tensor  # (N,3,3)
    delta: torch.Tensor  # (N,21,3)
    scale: torch.Tensor  # (N,1)
    t: torch.Tensor  # (N,3), t_z = 0
    x_d: torch.Tensor  # (N,21,3)


def compose_relative(
    source: KeypointInfo,
    driving: MotionFrames,
    reference: MotionFrames,
    region: str = "all",
    lip_absolute: bool = True,
    relative_scale: bool = True,
) -> ComposedKeypoints:
    """Apply the driving motion relative to the reference frame d_0 on the source keypoints.

    ``R = (R_d R_d0^T) R_s``, ``delta = exp_s + (exp_d - exp_d0)`` with the lip rows taken absolute from ``exp_d``
    (JoyVASA human mode; ``lip_absolute=False`` for animals), ``scale = scale_s scale_d / scale_d0`` (animals keep
    ``scale_s``: ``relative_scale=False``), ``t = t_s + t_d - t_d0`` with ``t_z = 0``. Regions follow JoyVASA's
    pipeline: ``pose`` keeps ``exp_s``, ``exp`` keeps ``R_s``, ``lip`` moves only the lip rows, and ``eyes`` keeps
    ``exp_s`` too (JoyVASA, unlike LivePortrait's video pipeline, has no eye-row branch); scale and t always move.
    """
    if region not in REGIONS:
        raise ValueError(f"keypoint composition: animation region {region!r} is not one of {REGIONS}")
    n = max(source.batch_size, len(driving), len(reference))
    if region in ("all", "pose"):
        R_new = (driving.R @ reference.R.transpose(1, 2)) @ source.R
    else:
        R_new = source.R
    rel_exp = source.exp + (driving.exp - reference.exp)
    if region in ("all", "exp"):
        delta = rel_exp
        if lip_absolute:
            delta = delta.expand(n, -1, -1).clone()
            idx = list(LIP_KEYPOINTS)
            delta[:, idx, :] = driving.exp.expand(n, -1, -1)[:, idx, :]
    elif region == "lip":
        delta = source.exp.expand(n, -1, -1).clone()
        idx = list(LIP_KEYPOINTS)
        delta[:, idx, :] = rel_exp.expand(n, -1, -1)[:, idx, :]
    else:
        delta = source.exp
    scale = source.scale * (driving.scale / reference.scale) if relative_scale else source.scale
    t = source.t + (driving.t - reference.t)
    t = torch.cat([t[:, 0:2], torch.zeros_like(t[:, 2:3])], dim=1)
    R_new, delta, scale, t = (v.expand(n, *v.shape[1:]) for v in (R_new, delta, scale, t))
    x_d = transform_keypoints(source.kp, delta, scale, t, R_new)
    return ComposedKeypoints(R=R_new, delta=delta, scale=scale, t=t, x_d=x_d)


# ---------------------------------------------------------------------------------------------------------------------
# Convex-hull volume and the expression-friendly multiplier


def _orient(points: np.ndarray, face: tuple[int, int, int], inside: np.ndarray) -> tuple[int, int, int]:
    a, b, c = face
    normal = np.cross(points[b] - points[a], points[c] - points[a])
    return (a, c, b) if float(normal @ (inside - points[a])) > 0 else face


def convex_hull_volume(points: np.ndarray | torch.Tensor) -> float:
    """Volume of the 3-D convex hull of (n,3) points, in float64 (what ``scipy.spatial.ConvexHull(p).volume`` gives).

    Incremental hull: start from a tetrahedron of extreme points, add each point outside the current hull by
    replacing the faces it sees with a fan from the horizon. A tolerance relative to the point-cloud size treats
    near-coplanar points as on the hull, which leaves the volume unchanged. Flat or degenerate input gives 0.0
    (scipy would raise instead).
    """
    p = np.asarray(points.detach().cpu().double() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    p = p.reshape(-1, 3)
    if len(p) < 4 or not np.isfinite(p).all():
        return 0.0
    extent = float(np.abs(p - p.mean(axis=0)).max())
    if extent == 0.0:
        return 0.0
    eps = 1e-12 * extent

    i0 = int(np.argmin(p[:, 0]))
    i1 = int(np.argmax(np.linalg.norm(p - p[i0], axis=1)))
    if np.linalg.norm(p[i1] - p[i0]) <= eps:
        return 0.0
    line = (p[i1] - p[i0]) / np.linalg.norm(p[i1] - p[i0])
    off = p - p[i0]
    i2 = int(np.argmax(np.linalg.norm(off - np.outer(off @ line, line), axis=1)))
    normal = np.cross(p[i1] - p[i0], p[i2] - p[i0])
    if np.linalg.norm(normal) <= eps * extent:
        return 0.0
    normal /= np.linalg.norm(normal)
    heights = off @ normal
    i3 = int(np.argmax(np.abs(heights)))
    if abs(heights[i3]) <= eps * 1e3:
        return 0.0

    inside = p[[i0, i1, i2, i3]].mean(axis=0)
    faces = [_orient(p, f, inside) for f in ((i0, i1, i2), (i0, i1, i3), (i0, i2, i3), (i1, i2, i3))]
    for k in range(len(p)):
        if k in (i0, i1, i2, i3):
            continue
        visible = []
        for f in faces:
            a, b, c = f
            nrm = np.cross(p[b] - p[a], p[c] - p[a])
            length = np.linalg.norm(nrm)
            if length > 0 and float(nrm @ (p[k] - p[a])) / length > eps:
                visible.append(f)
        if not visible:
            continue
        vis_edges = {(f[j], f[(j + 1) % 3]) for f in visible for j in range(3)}
        horizon = [(a, b) for (a, b) in vis_edges if (b, a) not in vis_edges]
        vis_set = set(visible)
        faces = [f for f in faces if f not in vis_set] + [(a, b, k) for (a, b) in horizon]

    volume = 0.0
    for a, b, c in faces:
        volume += float(np.linalg.det(np.stack([p[a] - inside, p[b] - inside, p[c] - inside])))
    return abs(volume) / 6.0


def hull_motion_multiplier(x_s: torch.Tensor, x_d0: torch.Tensor) -> torch.Tensor:
    """(B,) float64 ``sqrt(V(x_s)) / sqrt(V(x_d0))``: the expression-friendly rescaling of relative motion.

    The reference computes it from the first item only; here every source of the batch gets its own. A flat
    driving hull (volume 0) gives 1.0, i.e. no rescaling, instead of a division by zero.
    """
    n = max(x_s.shape[0], x_d0.shape[0])
    xs = x_s.expand(n, -1, -1)
    xd = x_d0.expand(n, -1, -1)
    out = []
    for i in range(n):
        vd = convex_hull_volume(xd[i])
        vs = convex_hull_volume(xs[i])
        out.append(math.sqrt(vs) / math.sqrt(vd) if vd > 0.0 else 1.0)
    return torch.tensor(out, dtype=torch.float64)


def apply_motion_multiplier(
    x_d: torch.Tensor, x_d0: torch.Tensor, x_s: torch.Tensor, multiplier: torch.Tensor | float
) -> torch.Tensor:
    """``(x_d - x_d0) * m + x_s``, in the dtype of the keypoints (the float64 m is rounded, as torch does)."""
    m = torch.as_tensor(multiplier, dtype=x_d.dtype, device=x_d.device).reshape(-1, 1, 1)
    return (x_d - x_d0) * m + x_s


def apply_driving_multiplier(x_d: torch.Tensor, x_s: torch.Tensor, multiplier: float) -> torch.Tensor:
    """``x_s + (x_d - x_s) * multiplier``: exaggerates (>1) or damps (<1) all motion around the source."""
    return x_s + (x_d - x_s) * multiplier


# ---------------------------------------------------------------------------------------------------------------------
# Stitching and retargeting


class Retargeting(Protocol):
    """The S network: three MLPs that return raw deltas (helper ``StitchingRetargetingNetwork``)."""

    def stitch(self, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor: ...

    def lip(self, x_s: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor: ...

    def eye(self, x_s: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor: ...


def _match_batch(x_s: torch.Tensor, n: int) -> torch.Tensor:
    return x_s.expand(n, *x_s.shape[1:]) if x_s.shape[0] != n else x_s


def apply_stitching(x_s: torch.Tensor, x_d: torch.Tensor, delta: torch.Tensor | Retargeting) -> torch.Tensor:
    """``x_d + Δ[:63]`` then one shared ``(tx, ty) = Δ[63:65]`` added to every keypoint.

    ``delta`` is the raw (N,65) stitching output, or the S network, which is then run on ``cat(x_s, x_d)``.
    """
    n = x_d.shape[0]
    if not isinstance(delta, torch.Tensor):
        delta = delta.stitch(_match_batch(x_s, n), x_d)
    num = x_d.shape[1] * 3
    delta = delta.reshape(delta.shape[0], -1)
    out = x_d + delta[:, :num].reshape(-1, x_d.shape[1], 3)
    shift = torch.cat([delta[:, num : num + 2], torch.zeros_like(delta[:, :1])], dim=1)
    return out + shift[:, None, :]


def _retarget_delta(
    mlp: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x_s: torch.Tensor, ratio: torch.Tensor | Sequence[float]
) -> torch.Tensor:
    """Run one retargeting MLP on ``x_s`` and ``ratio`` ((R,) or (N,R)) with matched batches; (N,21,3) delta."""
    r = torch.as_tensor(ratio, dtype=x_s.dtype, device=x_s.device)
    r = r.reshape(1, -1) if r.ndim <= 1 else r
    n = max(x_s.shape[0], r.shape[0])
    return mlp(_match_batch(x_s, n), _match_batch(r, n)).reshape(n, -1, 3)


def lip_retarget_delta(
    network: Retargeting, x_s: torch.Tensor, ratio: torch.Tensor | Sequence[float]
) -> torch.Tensor:
    """(N,21,3) lip delta from ``R_lip(cat(x_s.flat, [c_s_lip, c_d_lip]))``; ``ratio`` is (2,) or (N,2)."""
    return _retarget_delta(network.lip, x_s, ratio)


def eye_retarget_delta(
    network: Retargeting, x_s: torch.Tensor, ratio: torch.Tensor | Sequence[float]
) -> torch.Tensor:
    """(N,21,3) eye delta from ``R_eye(cat(x_s.flat, [c_s_eyeL, c_s_eyeR, c_d_eye]))``; ``ratio`` is (3,) or (N,3)."""
    return _retarget_delta(network.eye, x_s, ratio)


def apply_retargeting(x: torch.Tensor, *deltas: torch.Tensor | None) -> torch.Tensor:
    """``x + Σ deltas`` (absent deltas skipped): eye/lip retargeting and lip normalisation are plain offsets."""
    for d in deltas:
        if d is not None:
            x = x + d
    return x


# ---------------------------------------------------------------------------------------------------------------------
# Presets


@dataclass(frozen=True)
class KeypointOptions:
    """How driving motion becomes x_d. The defaults are the web preset (the reference web demo's path), the
    sensible one for a human portrait; :meth:`cli` is the reference command line's, :meth:`animal` the animal path.
    """

    # The reference's flag_relative_motion: composition is always relative here; the flag switches the adjustments
    # that come with it: the hull multiplier, lip normalisation, retargeting on the source keypoints.
    relative_adjustments: bool = True
    driving_option: str = "expression-friendly"  # "expression-friendly" = hull multiplier, "pose-friendly" = none
    stitching: bool = True
    normalize_lip: bool = True
    lip_normalize_threshold: float = 0.03
    lip_normalize_target: float = 0.0  # c_d of the lip-normalisation delta ([c_s, 0] in the reference)
    eye_retargeting: bool = False
    lip_retargeting: bool = False
    driving_multiplier: float = 1.0
    animation_region: str = "all"
    lip_absolute: bool = True  # JoyVASA human mode takes lip rows of exp absolute from the driving motion
    relative_scale: bool = True  # animals keep the source scale

    def __post_init__(self) -> None:
        if self.animation_region not in REGIONS:
            raise ValueError(f"keypoint options: animation_region {self.animation_region!r} not in {REGIONS}")
        if self.driving_option not in DRIVING_OPTIONS:
            raise ValueError(f"keypoint options: driving_option {self.driving_option!r} not in {DRIVING_OPTIONS}")

    @property
    def uses_hull_multiplier(self) -> bool:
        return self.relative_adjustments and self.driving_option == "expression-friendly"

    @classmethod
    def web(cls) -> KeypointOptions:
        """The web preset: relative + hull multiplier, stitching, lip normalisation, multiplier 1.0."""
        return cls()

    @classmethod
    def cli(cls) -> KeypointOptions:
        """The cli preset: no hull multiplier, no stitching, no lip normalisation, multiplier 1.10."""
        return cls(relative_adjustments=False, stitching=False, normalize_lip=False, driving_multiplier=1.1)

    @classmethod
    def animal(cls) -> KeypointOptions:
        """Animal mode: always relative with the hull multiplier, no lip override, source scale, no stitching."""
        return cls(stitching=False, normalize_lip=False, lip_absolute=False, relative_scale=False)


@dataclass
class DrivenKeypoints:
    """x_d for a batch of frames plus the intermediate stages (for previews, debugging and parity tests)."""

    x_d: torch.Tensor  # (N,21,3) final driving keypoints
    composed: ComposedKeypoints
    x_pre_stitch: torch.Tensor  # after the hull multiplier / retargeting, before stitching
    stitch_delta: torch.Tensor | None = None  # (N,65) raw stitching output


@dataclass
class KeypointComposer:
    """Per-source state for turning motion frames into driving keypoints.

    Built once per source and reference frame (x_s, frame-0 composition, hull multiplier and lip-normalisation
    delta are computed here); ``__call__`` then handles any number of frames in one batched pass.
    """

    source: KeypointInfo
    reference: MotionFrames
    options: KeypointOptions = field(default_factory=KeypointOptions)
    retargeting: Retargeting | None = None
    source_lip_ratio: float | torch.Tensor | None = None  # c_s_lip from the source landmarks (None: no landmarks)
    source_eye_ratio: Sequence[float] | torch.Tensor | None = None  # (c_s_eyeL, c_s_eyeR)
    x_s: torch.Tensor = field(init=False)
    x_d0: torch.Tensor = field(init=False)
    motion_multiplier: torch.Tensor | None = field(init=False, default=None)
    lip_delta: torch.Tensor | None = field(init=False, default=None)

    @torch.no_grad()
    def __post_init__(self) -> None:
        opts = self.options
        needs_net = opts.stitching or opts.eye_retargeting or opts.lip_retargeting
        if needs_net and self.retargeting is None:
            raise ValueError("keypoint options ask for stitching/retargeting but no stitching network was given")
        self.x_s = self.source.transformed()
        self.x_d0 = self._compose(self.reference).x_d
        if opts.uses_hull_multiplier:
            self.motion_multiplier = hull_motion_multiplier(self.x_s, self.x_d0)
        if (
            opts.normalize_lip
            and opts.relative_adjustments
            and not (opts.eye_retargeting or opts.lip_retargeting)
            and self.source_lip_ratio is not None
        ):
            c_s = torch.as_tensor(self.source_lip_ratio, dtype=self.x_s.dtype).reshape(-1, 1)
            if bool((c_s >= opts.lip_normalize_threshold).all()):
                if self.retargeting is None:
                    raise ValueError("lip normalisation needs the stitching/retargeting network")
                ratio = torch.cat([c_s, torch.full_like(c_s, opts.lip_normalize_target)], dim=1)
                self.lip_delta = lip_retarget_delta(self.retargeting, self.x_s, ratio)

    def _compose(self, driving: MotionFrames) -> ComposedKeypoints:
        opts = self.options
        return compose_relative(self.source, driving, self.reference, opts.animation_region, opts.lip_absolute,
                                opts.relative_scale)

    @torch.no_grad()
    def __call__(
        self,
        driving: MotionFrames,
        eye_ratio: torch.Tensor | Sequence[float] | None = None,
        lip_ratio: torch.Tensor | Sequence[float] | None = None,
        eye_delta: torch.Tensor | None = None,
    ) -> DrivenKeypoints:
        """Driving keypoints for N frames. ``eye_ratio`` (N,) / ``lip_ratio`` (N,) are the driving eye/lip openness,
        only read when eye/lip retargeting is on; ``eye_delta`` (N,21,3) (blinks) is added before stitching."""
        opts = self.options
        composed = self._compose(driving)
        x = composed.x_d
        n = x.shape[0]
        x_s = _match_batch(self.x_s, n)
        if self.motion_multiplier is not None:
            x = apply_motion_multiplier(x, self.x_d0, x_s, self.motion_multiplier)
        if opts.eye_retargeting or opts.lip_retargeting:
            retarget_eye = retarget_lip = None
            if opts.eye_retargeting and eye_ratio is not None and self.source_eye_ratio is not None:
                c_s = torch.as_tensor(self.source_eye_ratio, dtype=x.dtype).reshape(-1, 2).expand(n, 2)
                c_d = torch.as_tensor(eye_ratio, dtype=x.dtype).reshape(-1, 1).expand(n, 1)
                retarget_eye = eye_retarget_delta(self.retargeting, x_s, torch.cat([c_s, c_d], dim=1))
            if opts.lip_retargeting and lip_ratio is not None and self.source_lip_ratio is not None:
                c_s = torch.as_tensor(self.source_lip_ratio, dtype=x.dtype).reshape(-1, 1).expand(n, 1)
                c_d = torch.as_tensor(lip_ratio, dtype=x.dtype).reshape(-1, 1).expand(n, 1)
                retarget_lip = lip_retarget_delta(self.retargeting, x_s, torch.cat([c_s, c_d], dim=1))
            x = apply_retargeting(x_s if opts.relative_adjustments else x, retarget_eye, retarget_lip)
        x = apply_retargeting(x, eye_delta)  # blinks, on top of any retargeting
        x_pre = x
        stitch_delta = None
        if opts.stitching:
            stitch_delta = self.retargeting.stitch(x_s, x_pre)
            x = apply_stitching(x_s, x_pre, stitch_delta)
        x = apply_retargeting(x, self.lip_delta)
        x = apply_driving_multiplier(x, x_s, opts.driving_multiplier)
        return DrivenKeypoints(x_d=x, composed=composed, x_pre_stitch=x_pre, stitch_delta=stitch_delta)
