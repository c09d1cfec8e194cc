"""SCRFD (InsightFace ``det_10g.onnx``) pre-processing and output decoding in NumPy, as the reference runs it.

The network predicts, per feature-map cell and anchor, a face score, four distances from the cell centre to the box
edges and five keypoint offsets, all in units of the stride. Decoding turns these into boxes in the original image.
"""

from __future__ import annotations

import cv2
import numpy as np

STRIDES = (8, 16, 32)
NUM_ANCHORS = 2
INPUT_MEAN = 127.5
INPUT_STD = 128.0


def preprocess(image: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """RGB uint8 image -> (1, 3, H, W) float32 blob and the resize factor.

    The image is resized with its aspect ratio kept, placed top-left on a black canvas of ``input_size`` (W, H) and
    normalised as ``(x - 127.5) / 128`` in RGB order (InsightFace gets BGR and swaps; we already hold RGB).
    """
    in_w, in_h = input_size
    h, w = image.shape[:2]
    if h / w > in_h / in_w:
        new_h = in_h
        new_w = max(1, int(new_h / (h / w)))
    else:
        new_w = in_w
        new_h = max(1, int(new_w * (h / w)))
    det_scale = new_h / h
    canvas = np.zeros((in_h, in_w, 3), dtype=np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))
    blob = (canvas.astype(np.float32) - INPUT_MEAN) / INPUT_STD
    return np.ascontiguousarray(blob.transpose(2, 0, 1)[None]), float(det_scale)


def anchor_centers(height: int, width: int, stride: int, num_anchors: int = NUM_ANCHORS) -> np.ndarray:
    """(height*width*num_anchors, 2) cell centres (x, y) in input pixels, row-major, anchors innermost."""
    ys, xs = np.mgrid[:height, :width]
    centers = (np.stack([xs, ys], axis=-1).astype(np.float32) * stride).reshape(-1, 2)
    if num_anchors > 1:
        centers = np.repeat(centers, num_anchors, axis=0)
    return centers


def distance2bbox(points: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Left/top/right/bottom distances from a point -> (x0, y0, x1, y1)."""
    return np.stack(
        [points[:, 0] - distance[:, 0], points[:, 1] - distance[:, 1],
         points[:, 0] + distance[:, 2], points[:, 1] + distance[:, 3]], axis=-1,
    )


def distance2kps(points: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Keypoint offsets from a point -> (N, K, 2) absolute keypoints."""
    offsets = distance.reshape(distance.shape[0], -1, 2)
    return points[:, None, :] + offsets


def nms(dets: np.ndarray, thresh: float = 0.4) -> list[int]:
    """Greedy non-maximum suppression on (N, 5) ``[x0, y0, x1, y1, score]`` (InsightFace's +1 pixel area rule)."""
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1 + 1) * np.maximum(0.0, yy2 - yy1 + 1)
        iou = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[1:][iou <= thresh]
    return keep


def split_outputs(outputs: list[np.ndarray], input_hw: tuple[int, int]) -> dict[int, tuple[np.ndarray, ...]]:
    """Group the 9 (or 6, without keypoints) raw outputs by stride: {stride: (scores, boxes, kps or None)}.

    Outputs are recognised by their last dimension (1 score, 4 box, 10 keypoints) and their row count (cells x
    anchors of each stride), so the file's output order does not matter. A leading batch axis of 1 is dropped.
    """
    in_h, in_w = input_hw
    rows_to_stride = {(in_h // s) * (in_w // s) * NUM_ANCHORS: s for s in STRIDES}
    groups: dict[int, dict[int, np.ndarray]] = {s: {} for s in STRIDES}
    for out in outputs:
        arr = np.asarray(out, dtype=np.float32)
        if arr.ndim == 3:
            arr = arr[0]
        if arr.ndim == 1:
            arr = arr[:, None]
        stride = rows_to_stride.get(arr.shape[0])
        if stride is None or arr.shape[1] not in (1, 4, 10):
            raise ValueError(f"SCRFD: unexpected output shape {tuple(np.shape(out))} for input {in_w}x{in_h}")
        groups[stride][arr.shape[1]] = arr
    result = {}
    for s, g in groups.items():
        if 1 not in g or 4 not in g:
            raise ValueError(f"SCRFD: missing score or box output for stride {s}")
        result[s] = (g[1], g[4], g.get(10))
    return result


def decode(
    outputs: list[np.ndarray], input_hw: tuple[int, int], det_scale: float, score_thresh: float = 0.5,
    nms_thresh: float = 0.4,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw outputs -> ``(dets (N, 5) [x0, y0, x1, y1, score], kps (N, 5, 2) or None)``, original pixels, best first."""
    in_h, in_w = input_hw
    all_scores, all_boxes, all_kps = [], [], []
    has_kps = True
    for stride, (scores, boxes, kps) in split_outputs(outputs, input_hw).items():
        centers = anchor_centers(in_h // stride, in_w // stride, stride)
        keep = np.flatnonzero(scores[:, 0] >= score_thresh)
        all_scores.append(scores[keep, 0])
        all_boxes.append(distance2bbox(centers[keep], boxes[keep] * stride))
        if kps is None:
            has_kps = False
        else:
            all_kps.append(distance2kps(centers[keep], kps[keep] * stride))
    scores = np.concatenate(all_scores)
    boxes = np.concatenate(all_boxes) / det_scale
    order = scores.argsort()[::-1]
    dets = np.hstack([boxes, scores[:, None]]).astype(np.float32)[order]
    keep = nms(dets, nms_thresh)
    kps = (np.concatenate(all_kps) / det_scale)[order][keep].astype(np.float32) if has_kps else None
    return dets[keep], kps
