"""Reference image(s) -> the face crop(s) the networks see, with everything paste-back and the ratios need.

Input policy (each problem a FaceInputError naming the input and the fix):

* greyscale (H, W) or (H, W, 1) and grey+alpha are **converted** to RGB: nothing is lost and the user gets a result;
* RGBA: alpha is dropped by default, which is what the reference (``cv2.imread``) and ComfyUI's LoadImage do; it can
  instead be composited over white or black (``alpha="white" | "black"``) for cut-out portraits;
* float images are read as [0, 1] (ComfyUI IMAGE) or [0, 255] when their maximum exceeds 1; uint16 as 0..65535;
* images over ``max_pixels`` are refused before anything is allocated (say what to do), large images are shrunk to
  ``max_dim`` exactly as the reference's ``resize_to_limit`` does (1280, even sides);
* tiny images, blank (uniform, e.g. all black) images, no face, a face below ``min_face_size``, and a face index
  out of range each get their own message.

Animals: by default no detection at all, the whole image fitted undistorted into the 256 square (the reference's own
default squeezes it; its animal detector, X-Pose, needs a CUDA extension), or a crop from a user box or mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import FaceInputError
from ..validate import box_on_image, box_problem
from .crop import CropConfig, FaceCrop, crop_face, crop_from_box, limited_size, resize_to_limit, whole_image_crop
from .detectors.base import DetectedFace, FaceDetector
from .ratios import FaceRatios, face_ratios
from .select import FACE_ORDERS, select_face

CROP_MODES = ("auto", "face", "box", "mask", "whole", "squeeze")
WHOLE_CROPS = {"whole": "pad", "squeeze": "squeeze"}  # crop mode -> whole_image_crop's fit


@dataclass(frozen=True, eq=False)
class ReferenceOptions:
    """How to find and crop the face. Crop defaults are the official source crop (scale 2.3, vy -0.125, rotation).

    ``crop``: ``auto`` = ``box``/``mask`` when one is given, else ``face`` for humans and ``whole`` for animals;
    ``whole`` = the whole picture undistorted in the square (edges extended), ``squeeze`` = the whole picture resized
    to the square, the reference's (see ``whole_image_crop``).
    ``box`` is ``(x0, y0, x1, y1)`` in the input image's pixels; ``mask`` is (H, W) (or (B, H, W) for a batch),
    non-zero on the subject. Box and mask crops are squares of ``box_scale * max(w, h)`` shifted by
    ``vx_ratio``/``vy_ratio`` of their side, without rotation.
    """

    mode: str = "human"
    crop: str = "auto"
    face_index: int = 0
    face_order: str = "largest"
    scale: float = 2.3
    vx_ratio: float = 0.0
    vy_ratio: float = -0.125
    rotate: bool = True
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = None
    box_scale: float = 1.0
    dsize: int = 512
    max_dim: int = 1280
    division: int = 2
    min_image_size: int = 32
    min_face_size: int = 24
    max_pixels: int = 300_000_000
    alpha: str = "drop"


@dataclass(frozen=True, eq=False, repr=False)
class PreparedFace:
    """One reference image, ready: ``image`` is what paste-back writes into (after ``resize_to_limit``)."""

    image: np.ndarray
    crop: FaceCrop
    face: DetectedFace | None
    ratios: FaceRatios | None
    ratio_landmarks: np.ndarray | None
    ratio_convention: str | None
    input_size: tuple[int, int]
    notes: tuple[str, ...] = ()

    @property
    def crop256(self) -> np.ndarray:
        return self.crop.crop256

    def __repr__(self) -> str:
        h, w = self.image.shape[:2]
        face = "no face" if self.face is None else f"{self.face.convention} score {self.face.score:.2f}"
        return f"PreparedFace({w}x{h}, {self.crop.method} crop, {face}, {self.ratios})"


@dataclass(frozen=True, eq=False, repr=False)
class ReferenceFace:
    """One prepared face per reference image (a batch gives several), plus how they were made."""

    faces: tuple[PreparedFace, ...]
    mode: str
    detector: str | None
    options: ReferenceOptions = field(default_factory=ReferenceOptions)

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, i: int) -> PreparedFace:
        return self.faces[i]

    def __repr__(self) -> str:
        methods = ",".join(sorted({f.crop.method for f in self.faces}))
        return f"ReferenceFace({len(self.faces)} image(s), {self.mode}, {methods} crop, detector {self.detector})"


def _to_numpy(image) -> np.ndarray:
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    return np.asarray(image)


def loader_mask(mask: Any, image: Any, crop: str) -> np.ndarray | None:
    """The (B, H, W) float mask an image loader gave with ``image`` (B, H, W, C), or None where it means "no mask":
    ComfyUI's LoadImage gives a 64x64 zero mask when the file has no alpha, so in ``auto`` such a mask (empty or of
    another size) is dropped; with crop ``mask`` it is kept so the crop says what is wrong."""
    if mask is None:
        return None
    m = _to_numpy(mask).astype(np.float32, copy=False)
    if m.ndim == 2:
        m = m[None]
    if crop == "mask":
        return m
    if crop != "auto":
        return None
    if m.shape[-2:] != tuple(image.shape[1:3]) or not (m > 0.5).any():
        return None
    return m


def to_rgb_uint8(image, what: str = "reference image", alpha: str = "drop", max_pixels: int = 300_000_000):
    """Any common image layout -> ``(RGB uint8 (H, W, 3), notes)``; see the module docstring for the policy."""
    arr = _to_numpy(image)
    notes: list[str] = []
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise FaceInputError(
            f"{what}: expected an image (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {tuple(arr.shape)}."
        )
    h, w, c = arr.shape
    if h * w > max_pixels:
        raise FaceInputError(
            f"{what}: {w}x{h} is {h * w / 1e6:.0f} megapixels, above the {max_pixels / 1e6:.0f} MP this node will "
            "load into memory (it is shrunk to 1280 px anyway). Downscale or crop the image before loading it."
        )
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise FaceInputError(f"{what}: the image contains NaN or infinite values; reload or re-create it.")
        peak = float(arr.max()) if arr.size else 0.0
        factor = 255.0 if peak <= 1.0 else 1.0
        arr = np.clip(arr.astype(np.float32) * factor + 0.5, 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if c in (2, 4):
        rgb, a = arr[:, :, : c - 1], arr[:, :, c - 1 :]
        if alpha == "drop":
            arr = rgb
            notes.append("alpha channel dropped")
        elif alpha in ("white", "black"):
            bg = 255.0 if alpha == "white" else 0.0
            af = a.astype(np.float32) / 255
            arr = (rgb.astype(np.float32) * af + bg * (1 - af) + 0.5).astype(np.uint8)
            notes.append(f"alpha composited over {alpha}")
        else:
            raise FaceInputError(f"{what}: alpha must be 'drop', 'white' or 'black', got {alpha!r}.")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
        notes.append("greyscale converted to RGB")
    return np.ascontiguousarray(arr), tuple(notes)


def _check_content(img: np.ndarray, what: str, min_size: int) -> None:
    h, w = img.shape[:2]
    if min(h, w) < min_size:
        raise FaceInputError(
            f"{what}: {w}x{h} pixels is too small to hold a face (at least {min_size}x{min_size} needed); "
            "use a larger image."
        )
    step = max(1, int(np.sqrt(h * w / 250_000)))
    sample = img[::step, ::step]
    lo, hi = int(sample.min()), int(sample.max())
    if hi - lo <= 2:
        kind = "all black" if hi <= 2 else "all white" if lo >= 253 else f"a single flat colour (value {lo})"
        raise FaceInputError(
            f"{what}: the image is {kind}, there is nothing to animate; check the loader or the upstream node.",
            cli=f"{what}: the image is {kind}, there is nothing to animate; check the --image file.",
        )


def check_image(image, what: str = "reference image", alpha: str = "drop", min_size: int = 32) -> None:
    """The checks that need only the pixels (layout, size, blank content), to run before any model loads."""
    rgb, _ = to_rgb_uint8(image, what, alpha)
    _check_content(rgb, what, min_size)


def _bbox_of_mask(mask: np.ndarray, what: str) -> tuple[float, float, float, float]:
    on = mask > (0.5 if np.issubdtype(mask.dtype, np.floating) and mask.max() <= 1.0 else 0)
    if not on.any():
        raise FaceInputError(f"{what}: the mask is empty; paint the face region or use a box instead.")
    ys, xs = np.flatnonzero(on.any(axis=1)), np.flatnonzero(on.any(axis=0))
    return float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)


def crop_mode(opts: ReferenceOptions) -> str:
    """The crop mode ``opts`` resolve to (``auto`` decided: box, mask, face or whole)."""
    if opts.crop not in CROP_MODES:
        raise FaceInputError(f"reference crop: unknown crop mode {opts.crop!r}; choose one of {', '.join(CROP_MODES)}.")
    if opts.crop != "auto":
        return opts.crop
    if opts.box is not None:
        return "box"
    if opts.mask is not None:
        return "mask"
    return "whole" if opts.mode == "animal" else "face"


def _validate(opts: ReferenceOptions) -> None:
    if opts.mode not in ("human", "animal"):
        raise FaceInputError(f"reference: mode must be 'human' or 'animal', got {opts.mode!r}.")
    if opts.face_order not in FACE_ORDERS:
        raise FaceInputError(f"reference: face order {opts.face_order!r} unknown; choose one of {FACE_ORDERS}.")
    if not (opts.scale > 0 and opts.box_scale > 0):
        raise FaceInputError(f"reference crop: scale must be > 0 (got {opts.scale}, box_scale {opts.box_scale}).")
    if opts.dsize < 64:
        raise FaceInputError(f"reference crop: dsize must be at least 64 (got {opts.dsize}).")


def _user_box(
    opts: ReferenceOptions, mask: Any, in_w: int, in_h: int, mode: str, what: str
) -> tuple[tuple[float, ...], str | None]:
    """The box (x0, y0, x1, y1) of crop mode ``box`` or ``mask``, in the input image's pixels, clipped to the image,
    and the note that says so (a box mostly off the image is refused)."""
    if mode == "mask":
        if mask is None:
            raise FaceInputError(f"{what}: crop mode 'mask' needs a mask the size of the image.")
        m = _to_numpy(mask)
        if m.ndim != 2 or m.shape != (in_h, in_w):
            raise FaceInputError(
                f"{what}: the mask has shape {tuple(m.shape)} but the image is {in_w}x{in_h}; give an (H, W) "
                "mask of the same size."
            )
        return _bbox_of_mask(m, what), None
    if opts.box is None:
        raise FaceInputError(f"{what}: crop mode 'box' needs a box (x0, y0, x1, y1) in image pixels.")
    x0, y0, x1, y1 = (float(v) for v in opts.box)
    cli_box = f"--box {x0:g},{y0:g},{x1 - x0:g},{y1 - y0:g}"
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or not (x1 > x0 and y1 > y0):
        raise FaceInputError(
            f"{what}: the box {list(opts.box)} is empty; give (x0, y0, x1, y1) with x0 < x1, y0 < y1 inside the "
            "image.", cli=f"{cli_box}: the box is empty; give x,y,w,h with a positive width and height.")
    refusal, note = box_problem((x0, y0, x1, y1), in_w, in_h)
    if refusal:
        raise FaceInputError(f"{what}: box {list(opts.box)}: {refusal}", cli=f"{cli_box}: {refusal}")
    return box_on_image((x0, y0, x1, y1), in_w, in_h)[0], note


def _crop_box(img: np.ndarray, box: tuple[float, ...], opts: ReferenceOptions, mode: str, what: str) -> FaceCrop:
    """Crop modes ``box`` and ``mask``: a square around the (resized) box."""
    if max(box[2] - box[0], box[3] - box[1]) < opts.min_face_size:
        raise FaceInputError(
            f"{what}: the {mode} is {box[2] - box[0]:.0f}x{box[3] - box[1]:.0f} px, below {opts.min_face_size} "
            "px; draw it around the whole face."
        )
    return crop_from_box(img, box, opts.box_scale, opts.vx_ratio, opts.vy_ratio, opts.dsize)


def _crop_whole(
    img: np.ndarray, detector: FaceDetector | None, opts: ReferenceOptions, what: str
) -> tuple[FaceCrop, DetectedFace | None]:
    """Crop modes ``whole`` and ``squeeze``: the image itself; a human face is still looked for, for its eye and lip
    ratios."""
    crop = whole_image_crop(img, opts.dsize, fit=WHOLE_CROPS[crop_mode(opts)])
    face = None
    if opts.mode == "human" and detector is not None:
        faces = detector.detect(img)
        if faces:
            face = select_face(faces, opts.face_index, opts.face_order, (img.shape[1], img.shape[0]), what)
    return crop, face


def _crop_detected(
    img: np.ndarray, detector: FaceDetector | None, opts: ReferenceOptions, what: str
) -> tuple[FaceCrop, DetectedFace]:
    """Crop mode ``face``: LivePortrait's crop around the chosen detected face."""
    if detector is None:
        raise FaceInputError(
            f"{what}: crop mode 'face' needs a face detector; connect one, or use crop 'whole' or a box."
        )
    faces = detector.detect(img)
    if not faces:
        found_by = f"no face found by the {getattr(detector, 'name', 'face')} detector"
        raise FaceInputError(
            f"{what}: {found_by}. Use a clearer, front-facing photo, or draw a box around the face (crop 'box'), "
            "or animate the whole image (crop 'whole'; animals use mode 'animal').",
            cli=f"{what}: {found_by}. Use a clearer, front-facing photo, or give the face's box with --box "
                "x,y,w,h, or animate the whole image with --no-crop (animals: --animal).",
        )
    face = select_face(faces, opts.face_index, opts.face_order, (img.shape[1], img.shape[0]), what)
    bw, bh = float(face.box[2] - face.box[0]), float(face.box[3] - face.box[1])
    if max(bw, bh) < opts.min_face_size:
        raise FaceInputError(
            f"{what}: the face is only {bw:.0f}x{bh:.0f} px (at least {opts.min_face_size} px needed for a "
            "usable 512 crop); use a larger or closer photo."
        )
    return crop_face(img, face.landmarks, face.convention, crop_options(opts)), face


def _prepare_one(image, mask, detector: FaceDetector | None, opts: ReferenceOptions, what: str) -> PreparedFace:
    rgb, notes = to_rgb_uint8(image, what, opts.alpha, opts.max_pixels)
    _check_content(rgb, what, opts.min_image_size)
    in_h, in_w = rgb.shape[:2]
    lim_h, lim_w = limited_size(in_h, in_w, opts.max_dim)
    img = resize_to_limit(rgb, opts.max_dim, opts.division)
    if (lim_h, lim_w) != (in_h, in_w):
        notes += (f"resized {in_w}x{in_h} -> {img.shape[1]}x{img.shape[0]} (max_dim {opts.max_dim})",)
    mode = crop_mode(opts)
    face: DetectedFace | None = None
    if mode in ("box", "mask"):
        (x0, y0, x1, y1), clipped = _user_box(opts, mask, in_w, in_h, mode, what)
        notes += (clipped,) if clipped else ()
        fx, fy = lim_w / in_w, lim_h / in_h
        crop = _crop_box(img, (x0 * fx, y0 * fy, x1 * fx, y1 * fy), opts, mode, what)
    elif mode in WHOLE_CROPS:
        crop, face = _crop_whole(img, detector, opts, what)
    else:
        crop, face = _crop_detected(img, detector, opts, what)
        if face.extra.get("fallback_note"):
            notes += (face.extra["fallback_note"],)
    ratios = ratio_pts = ratio_conv = None
    if face is not None:
        if face.extra.get("lmk203") is not None:
            ratio_pts, ratio_conv = np.asarray(face.extra["lmk203"], dtype=np.float32), "lmk203"
        else:
            ratio_pts, ratio_conv = np.asarray(face.landmarks, dtype=np.float32), face.convention
        ratios = face_ratios(ratio_pts, ratio_conv)
    return PreparedFace(
        image=img, crop=crop, face=face, ratios=ratios, ratio_landmarks=ratio_pts, ratio_convention=ratio_conv,
        input_size=(in_w, in_h), notes=notes,
    )


def _split_batch(images) -> list:
    if isinstance(images, (list, tuple)):
        return list(images)
    arr = images
    shape = tuple(arr.shape)
    if len(shape) == 4:
        return [arr[i] for i in range(shape[0])]
    return [arr]


def prepare_reference(
    images, detector: FaceDetector | None = None, options: ReferenceOptions | None = None, **overrides
) -> ReferenceFace:
    """Find, choose and crop the face of each reference image; one face per image.

    ``images``: one image (H, W[, C]) or a batch (B, H, W, C) (NumPy or torch, uint8 or float), or a list.
    ``overrides`` replace single fields of ``options`` (e.g. ``face_index=1``).
    """
    opts = replace(options or ReferenceOptions(), **overrides) if overrides else (options or ReferenceOptions())
    _validate(opts)
    items = _split_batch(images)
    if not items:
        raise FaceInputError("reference image: the batch is empty; connect at least one image.")
    masks: list = [None] * len(items)
    if opts.mask is not None:
        m = _to_numpy(opts.mask)
        if m.ndim == 3 and m.shape[-1] == 1:
            m = m[..., 0]
        if m.ndim == 3 and m.shape[0] == len(items) and len(items) > 1:
            masks = [m[i] for i in range(len(items))]
        else:
            masks = [m[0] if m.ndim == 3 else m] * len(items)
    faces = []
    for i, (item, mask) in enumerate(zip(items, masks, strict=True)):
        what = "reference image" if len(items) == 1 else f"reference image {i} of {len(items)}"
        faces.append(_prepare_one(item, mask, detector, opts, what))
    name = getattr(detector, "name", None) if detector is not None else None
    if crop_mode(opts) in ("box", "mask") or (opts.mode == "animal" and crop_mode(opts) in WHOLE_CROPS):
        name = None
    return ReferenceFace(faces=tuple(faces), mode=opts.mode, detector=name, options=opts)


def crop_options(opts: ReferenceOptions) -> CropConfig:
    """The landmark-crop part of the options, e.g. for re-cropping video frames the same way."""
    return CropConfig(dsize=opts.dsize, scale=opts.scale, vx_ratio=opts.vx_ratio, vy_ratio=opts.vy_ratio,
                      rotate=opts.rotate)
