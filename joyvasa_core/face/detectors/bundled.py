"""A face detector that needs no download: MediaPipe's BlazeFace + face mesh + iris, ported to PyTorch.

The weights (about 5 MB, Apache-2.0, see ``weights/LICENSE-mediapipe.txt``) ship inside this package, so the
cropper works offline and without the mediapipe package (which pins numpy<2 and protobuf<5). The pipeline is
MediaPipe FaceMesh's static-image path with refined landmarks: letterboxed detection, a rotated 1.5× face ROI
for the 468-point mesh, then the iris model on both eyes to reach the 478-point layout the crop maths expects.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from ...errors import CheckpointError, FaceInputError
from .base import DetectedFace
from .blazeface import build_blazeface, postprocess, ssd_anchors
from .facemesh import FaceMeshConfig, FaceMeshNet, RotatedRect, cv2_affine, rect_from_points, warp_roi
from .iris import IrisConfig, IrisNet, eye_rect
from .mesh_mirror import MESH_MIRROR

PIXEL_CENTRE = 0.5  # a pixel's centre in the networks' continuous coordinates
WEIGHTS_PATH = Path(__file__).resolve().parents[1] / "weights" / "mediapipe_face.safetensors"


@lru_cache(maxsize=2)
def _read_weights(path: str) -> dict[str, torch.Tensor]:
    """The whole weight file, read once per process (it is small)."""
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise CheckpointError(
            f"bundled face detector: weight file {path} is missing; reinstall the node pack or run "
            "tools/convert_mediapipe_weights.py to rebuild it"
        )
    return load_file(path)


def load_mediapipe_net(
    net: nn.Module,
    prefix: str,
    path: str | Path = WEIGHTS_PATH,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """Fill one network from the bundled safetensors (keys ``short.``, ``full.``, ``mesh.``, ``iris.``)."""
    state = {k[len(prefix) + 1 :]: v for k, v in _read_weights(str(path)).items() if k.startswith(prefix + ".")}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"bundled face detector: {path} does not fit the '{prefix}' network: {err}") from err
    return net.to(device=device, dtype=dtype).eval()


@dataclass(frozen=True)
class BundledDetectorConfig:
    """Thresholds of the bundled pipeline (MediaPipe FaceMesh's defaults)."""

    min_detection_score: float = 0.5
    mesh: FaceMeshConfig = FaceMeshConfig()
    iris: IrisConfig = IrisConfig()
    refine_iris: bool = True


class BundledFaceDetector:
    """MediaPipe-equivalent face detector in PyTorch: every face of an RGB image with 478 mesh points ("mp478")."""

    def __init__(
        self,
        range: str = "short",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        config: BundledDetectorConfig | None = None,
        weights_path: str | Path = WEIGHTS_PATH,
    ) -> None:
        self.config = config or BundledDetectorConfig()
        self.range = range
        self.name = f"mediapipe-{range}"
        self.device = torch.device(device)
        self.dtype = dtype
        det, det_cfg = build_blazeface(range)
        self.det_cfg = replace(det_cfg, min_score_thresh=self.config.min_detection_score)
        self.anchors = ssd_anchors(self.det_cfg)
        self.detector = load_mediapipe_net(det, range, weights_path, self.device, dtype)
        self.mesh = load_mediapipe_net(FaceMeshNet(), "mesh", weights_path, self.device, dtype)
        self.iris = load_mediapipe_net(IrisNet(), "iris", weights_path, self.device, dtype)

    def _to_tensor(self, batch: np.ndarray, scale: float, offset: float) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        return (x.permute(0, 3, 1, 2).to(torch.float32) * scale + offset).to(self.dtype)

    def detection_input(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Letterbox the image into the detector's square input (zero borders); returns uint8 crop and 2×3 affine."""
        h, w = image.shape[:2]
        size = self.det_cfg.input_size
        side = max(h, w)
        k = size / side
        m = np.array([[k, 0.0, (side - w) / 2 * k], [0.0, k, (side - h) / 2 * k]])
        crop = cv2.warpAffine(image, cv2_affine(m), (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        return crop, m

    @torch.no_grad()
    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """All faces, best detection score first, with boxes and 478 points in ``image`` pixels."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            found = getattr(image, "shape", type(image).__name__), getattr(image, "dtype", "")
            raise FaceInputError(f"bundled face detector: expected an RGB uint8 (H, W, 3) image, got {found}")
        crop, m = self.detection_input(image)
        reg, cls = self.detector(self._to_tensor(np.stack([crop, crop[:, ::-1]]), 1 / 127.5, -1.0))
        reg, cls = reg.float().cpu().numpy(), cls.float().cpu().numpy()
        raw = postprocess(reg[0], cls[0], self.anchors, self.det_cfg, flipped=(reg[1], cls[1]))
        if not raw:
            return []
        # Normalised letterbox coordinates -> image pixels.
        size = self.det_cfg.input_size
        scale, shift = size / m[0, 0], m[:, 2] / m[0, 0]
        boxes = np.stack([d.box for d in raw]).reshape(-1, 2, 2) * scale - shift
        kps = np.stack([d.keypoints for d in raw]) * scale - shift
        scores = [d.score for d in raw]
        return self._landmarks(image, boxes.reshape(-1, 4), kps, scores)

    def _landmarks(
        self, image: np.ndarray, boxes: np.ndarray, kps: np.ndarray, scores: list[float]
    ) -> list[DetectedFace]:
        """Face mesh on every detection at once, then iris on both eyes of every face kept."""
        mcfg = self.config.mesh
        rects = [rect_from_points(b, k[0], k[1], mcfg.roi_scale) for b, k in zip(boxes, kps, strict=True)]
        crops = np.stack([warp_roi(image, r, mcfg.input_size) for r in rects])
        pts, presence = self._mirror_averaged_mesh(crops)
        keep = [i for i in range(len(rects)) if presence[i] >= mcfg.presence_threshold]
        if not keep:
            return []
        meshes = [rects[i].project(pts[i, :, :2], mcfg.input_size) for i in keep]
        irises = self._irises(image, meshes) if self.config.refine_iris else [np.zeros((0, 2))] * len(keep)
        faces = []
        for j, i in enumerate(keep):
            # The networks' continuous frame (pixel i covers [i, i + 1)) -> the crop's and OpenCV's (pixel i at i),
            # so that the crop of a mirrored photo (x -> W - 1 - x) is the mirrored crop. ``roi`` stays continuous.
            lmk = np.concatenate([meshes[j], irises[j]]) - PIXEL_CENTRE
            faces.append(
                DetectedFace(
                    box=(boxes[i] - PIXEL_CENTRE).astype(np.float32),
                    score=float(scores[i]),
                    landmarks=lmk.astype(np.float32),
                    convention="mp478" if self.config.refine_iris else "mp468",
                    extra={"presence": float(presence[i]), "keypoints": (kps[i] - PIXEL_CENTRE).astype(np.float32),
                           "roi": rects[i]},
                )
            )
        return faces

    def _mirror_averaged_mesh(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 468, 3) mesh points in ROI pixels and (B,) presence, each the mean of the mesh of the ROI and the
        mirrored mesh of the ROI flipped left-right.

        The mesh network is not mirror-symmetric: on the very same ROI, mirrored, its points disagree by 1.5 px
        (192 px ROI) on average, which tilts the crop by about a degree and moves its corners by 4 to 15 px
        (tools/make_mesh_mirror_table.py measures it). Averaging both views makes the landmarks, and so the crop of a
        face and of its mirror image, mirror images of each other; the second pass costs one more mesh run per face.
        """
        size = self.config.mesh.input_size
        both = np.concatenate([crops, crops[:, :, ::-1]])
        pts, presence = self.mesh(self._to_tensor(both, 1 / 255, 0.0))
        pts = pts.float().cpu().numpy()
        presence = torch.sigmoid(presence.float()).cpu().numpy()
        n = len(crops)
        mirrored = pts[n:, list(MESH_MIRROR)]
        mirrored[..., 0] = size - mirrored[..., 0]
        return (pts[:n] + mirrored) / 2, (presence[:n] + presence[n:]) / 2

    def _irises(self, image: np.ndarray, meshes: list[np.ndarray]) -> list[np.ndarray]:
        """(10, 2) iris points per face: the 33/133 eye's 5 points, then the mirrored 362/263 eye's."""
        icfg = self.config.iris
        size = icfg.input_size
        rects: list[RotatedRect] = []
        crops = []
        for mesh in meshes:
            for corners, flip in ((icfg.left_corners, False), (icfg.right_corners, True)):
                rect = eye_rect(mesh, corners, icfg.roi_scale)
                rects.append(rect)
                crops.append(warp_roi(image, rect, size, flip=flip))
        _, iris = self.iris(self._to_tensor(np.stack(crops), 1 / 255, 0.0))
        iris = iris.float().cpu().numpy()[..., :2]
        # Un-mirror the 362/263 eye: x back, and its ring's left/right points swap places so that both eyes list
        # their ring in the same image-space order, as the refined 478-point mesh does.
        iris[1::2, :, 0] = size - iris[1::2, :, 0]
        iris[1::2] = iris[1::2][:, [0, 3, 2, 1, 4]]
        pts = [rect.project(p, size) for rect, p in zip(rects, iris, strict=True)]
        return [np.concatenate(pts[2 * f : 2 * f + 2]) for f in range(len(meshes))]
