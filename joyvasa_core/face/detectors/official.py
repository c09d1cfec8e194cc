"""The reference's own face path on the user's ONNX files, without the ``insightface`` package.

1. SCRFD ``det_10g.onnx`` finds boxes (and 5 keypoints) on a 512 letterboxed copy.
2. ``2d106det.onnx`` places 106 landmarks on a 192 crop around each box; the source crop uses these.
3. LivePortrait's ``landmark.onnx`` refines 203 points on a 224 crop made from the 106; the eye/lip ratios use these.

The InsightFace models (buffalo_l) are licensed for non-commercial research only, so they are never downloaded here:
the user places them and the error says where.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ...errors import CheckpointError
from ..crop import CropConfig, crop_face, transform_points
from . import scrfd
from .base import DetectedFace

DET_FILE = "det_10g.onnx"
LMK106_FILE = "2d106det.onnx"
LMK203_FILE = "landmark.onnx"
# Where ComfyUI users keep them (relative to ComfyUI's models folder), also searched under ``model_dir``.
BUFFALO_SUBDIRS = ("", "buffalo_l", "models/buffalo_l", "insightface/models/buffalo_l", "insightface/buffalo_l")
LIVEPORTRAIT_SUBDIRS = ("", "liveportrait", "liveportrait/landmark", "insightface/models/buffalo_l", "buffalo_l")


@dataclass(frozen=True)
class OfficialDetectorConfig:
    """Official values: det size 512 and threshold 0.15 (the JoyVASA/LivePortrait command line), NMS 0.4,
    the 106 model's box margin 1.5, the 203 model's crop (224 px, scale 1.5, vy -0.1)."""

    det_size: int = 512
    det_thresh: float = 0.15
    nms_thresh: float = 0.4
    lmk106_margin: float = 1.5
    lmk203_size: int = 224
    lmk203_scale: float = 1.5
    lmk203_vy_ratio: float = -0.1
    cpu_threads: int = 4


def default_providers() -> list[str]:
    """CUDA when this onnxruntime build offers it, CPU always as the fallback."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available] or available


def _find(model_dir: Path, name: str, subdirs: tuple[str, ...]) -> Path | None:
    for sub in subdirs:
        path = model_dir / sub / name
        if path.is_file():
            return path
    return None


def _landmark_normalisation(path: Path) -> tuple[float, float]:
    """InsightFace's rule for 2d106det: (mean 0, std 1) when the graph starts with its own normalisation (Sub/Mul or
    ``bn_data``), else (127.5, 128). Needs the ``onnx`` package to read node names; without it the buffalo_l
    2d106det value (it starts with ``bn_data``) is assumed."""
    try:
        import onnx
    except ImportError:
        return 0.0, 1.0
    graph = onnx.load(str(path), load_external_data=False).graph
    find_sub = find_mul = False
    for i, node in enumerate(graph.node[:8]):
        if node.name.startswith(("Sub", "_minus")):
            find_sub = True
        if node.name.startswith(("Mul", "_mul")):
            find_mul = True
        if i < 3 and node.name == "bn_data":
            find_sub = find_mul = True
    return (0.0, 1.0) if (find_sub and find_mul) else (127.5, 128.0)


class OfficialFaceDetector:
    """SCRFD boxes + 106 landmarks (the crop) + LivePortrait's 203 landmarks (the ratios), with onnxruntime.

    Returns ``lmk106`` faces, best score first; ``extra`` holds ``kps5`` and, when ``landmark.onnx`` is used,
    ``lmk203`` (original pixels).
    """

    name = "official (insightface buffalo_l + LivePortrait landmark.onnx)"

    def __init__(
        self, model_dir: str | os.PathLike, providers: list[str] | None = None,
        config: OfficialDetectorConfig | None = None, landmark_dir: str | os.PathLike | None = None,
        use_203: bool = True,
    ) -> None:
        import onnxruntime as ort

        self.config = config or OfficialDetectorConfig()
        root = Path(model_dir)
        det = _find(root, DET_FILE, BUFFALO_SUBDIRS)
        lmk106 = _find(root, LMK106_FILE, BUFFALO_SUBDIRS)
        lmk203 = None
        if use_203:
            lmk203 = _find(Path(landmark_dir) if landmark_dir else root, LMK203_FILE, LIVEPORTRAIT_SUBDIRS)
            if lmk203 is None and landmark_dir:
                lmk203 = _find(root, LMK203_FILE, LIVEPORTRAIT_SUBDIRS)
        missing = [n for n, p in ((DET_FILE, det), (LMK106_FILE, lmk106), (LMK203_FILE, lmk203 if use_203 else 1))
                   if p is None]
        if missing:
            raise CheckpointError(
                f"official face detector: {', '.join(missing)} not found under {root}"
                + (f" or {landmark_dir}" if landmark_dir else "")
                + ". Place det_10g.onnx and 2d106det.onnx (InsightFace buffalo_l, non-commercial licence) in "
                "ComfyUI/models/insightface/models/buffalo_l/ and landmark.onnx (LivePortrait) in "
                "ComfyUI/models/liveportrait/, or pick the bundled detector instead."
            )
        self.providers = list(providers) if providers else default_providers()
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, min(self.config.cpu_threads, os.cpu_count() or 1))
        options.log_severity_level = 3

        def session(path: Path):
            try:
                return ort.InferenceSession(str(path), sess_options=options, providers=self.providers)
            except Exception as exc:
                raise CheckpointError(
                    f"official face detector: onnxruntime cannot load {path} ({type(exc).__name__}: {exc}); "
                    "the file is damaged or not the expected model. Download it again."
                ) from exc

        self.paths = {"det": det, "lmk106": lmk106, "lmk203": lmk203}
        self._det = session(det)
        self._det_input = self._det.get_inputs()[0]
        shape = self._det_input.shape
        if isinstance(shape[2], int) and isinstance(shape[3], int):
            self.det_input_size = (int(shape[3]), int(shape[2]))
        else:
            self.det_input_size = (self.config.det_size, self.config.det_size)
        self._lmk106 = session(lmk106)
        self._lmk106_input = self._lmk106.get_inputs()[0]
        size = self._lmk106_input.shape[2]
        self.lmk106_size = int(size) if isinstance(size, int) else 192
        self.lmk106_mean, self.lmk106_std = _landmark_normalisation(lmk106)
        self._lmk203 = session(lmk203) if lmk203 is not None else None

    def __repr__(self) -> str:
        return f"OfficialFaceDetector({self.paths['det'].parent}, providers={self.providers})"

    def detect_boxes(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """SCRFD alone: ``(dets (N, 5), kps (N, 5, 2))`` in image pixels, best score first."""
        blob, det_scale = scrfd.preprocess(image, self.det_input_size)
        outputs = self._det.run(None, {self._det_input.name: blob})
        return scrfd.decode(
            outputs, (blob.shape[2], blob.shape[3]), det_scale, self.config.det_thresh, self.config.nms_thresh
        )

    def landmarks_106(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """2d106det on an axis-aligned crop around ``box``: centre = box centre, side = margin * max(w, h)."""
        n = self.lmk106_size
        x0, y0, x1, y1 = (float(v) for v in box[:4])
        s = n / (max(x1 - x0, y1 - y0) * self.config.lmk106_margin)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        M = np.array([[s, 0.0, n / 2 - s * cx], [0.0, s, n / 2 - s * cy]], dtype=np.float64)
        crop = cv2.warpAffine(image, M, (n, n), borderValue=0.0)
        blob = ((crop.astype(np.float32) - self.lmk106_mean) / self.lmk106_std).transpose(2, 0, 1)[None]
        pred = np.asarray(self._lmk106.run(None, {self._lmk106_input.name: np.ascontiguousarray(blob)})[0][0])
        pred = pred.reshape(-1, 3 if pred.size >= 3000 else 2)[-106:, :2].astype(np.float64)
        pts = (pred + 1) * (n // 2)
        inv = cv2.invertAffineTransform(M)
        return (pts @ inv[:, :2].T + inv[:, 2]).astype(np.float32)

    def landmarks_203(self, image: np.ndarray, lmk106: np.ndarray) -> np.ndarray:
        """LivePortrait's landmark.onnx on a rotated 224 crop made from the 106 points, mapped back to the image."""
        if self._lmk203 is None:
            raise CheckpointError("official face detector: landmark.onnx was not loaded (use_203=False).")
        cfg = self.config
        crop = crop_face(
            image, lmk106, "lmk106",
            CropConfig(dsize=cfg.lmk203_size, scale=cfg.lmk203_scale, vx_ratio=0.0, vy_ratio=cfg.lmk203_vy_ratio,
                       rotate=True, out_size=cfg.lmk203_size),
        )
        inp = (crop.crop512.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        name = self._lmk203.get_inputs()[0].name
        outputs = self._lmk203.run(None, {name: np.ascontiguousarray(inp)})
        pts = np.asarray(outputs[2][0], dtype=np.float32).reshape(-1, 2) * cfg.lmk203_size
        return transform_points(pts, crop.M_c2o)

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        dets, kps = self.detect_boxes(image)
        faces = []
        for i, det in enumerate(dets):
            lmk106 = self.landmarks_106(image, det)
            extra: dict = {"kps5": kps[i] if kps is not None else None, "detector": "official"}
            if self._lmk203 is not None:
                extra["lmk203"] = self.landmarks_203(image, lmk106)
            faces.append(
                DetectedFace(box=det[:4].astype(np.float32), score=float(det[4]), landmarks=lmk106,
                             convention="lmk106", extra=extra)
            )
        return faces
