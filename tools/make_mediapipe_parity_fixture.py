"""Record the original MediaPipe TFLite models' outputs on astronaut.png into a small test fixture.

The torch ports in ``joyvasa_core.face.detectors`` are tested against these numbers, so neither CI nor the test
suite needs the 35 MB mediapipe wheel or the TFLite runtime. This script needs both (requirements-tools.txt:
``tflite`` is not used here, ``ai-edge-litert`` runs the models); the wheel is fetched with ``pip download`` into
the git-ignored ``.cache/mediapipe`` unless ``--wheel`` is given.

The exact uint8 model inputs are stored (the letterboxed detector inputs, the rotated face-mesh ROI and the two
eye ROIs, cut by the bundled pipeline from the photo), together with each model's raw outputs from the LiteRT
interpreter, so the comparison does not depend on the OpenCV version's warp.

    python tools/make_mediapipe_parity_fixture.py [--wheel PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from joyvasa_core.face.detectors.bundled import BundledFaceDetector  # noqa: E402
from joyvasa_core.face.detectors.facemesh import warp_roi  # noqa: E402
from joyvasa_core.face.detectors.iris import eye_rect  # noqa: E402
from tools.convert_mediapipe_weights import MODELS, download_wheel  # noqa: E402

OUT = REPO / "tests" / "fixtures" / "mediapipe_litert.safetensors"
CACHE = REPO / ".cache" / "mediapipe"

# How each model's float input is made from the stored uint8 crop: x * scale + offset.
INPUT_RANGE = {"short": (1 / 127.5, -1.0), "full": (1 / 127.5, -1.0), "mesh": (1 / 255, 0.0), "iris": (1 / 255, 0.0)}

# MediaPipe 0.10.21 ``solutions.face_detection`` on this photo (dependencies.md, "mediapipe" row): x, y, w, h.
MEDIAPIPE_BOX_XYWH = [178, 83, 95, 95]


def run_litert(model: bytes, batch: np.ndarray) -> list[np.ndarray]:
    """Run a TFLite model one image at a time; outputs stacked over the batch, the larger output first.

    In all four models the larger output is graph output 0 (regressors, landmarks, eye contour).
    """
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    details = sorted(interp.get_output_details(), key=lambda d: -int(np.prod(d["shape"])))
    outs = []
    for x in batch:
        interp.set_tensor(inp, x[None])
        interp.invoke()
        outs.append([interp.get_tensor(d["index"]).reshape(-1) for d in details])
    return [np.stack(o) for o in zip(*outs, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path)
    args = parser.parse_args()
    wheel = args.wheel
    if wheel is None:
        found = sorted(CACHE.glob("mediapipe-0.10.21-*.whl"))
        wheel = found[0] if found else download_wheel(CACHE)
    with zipfile.ZipFile(wheel) as zf:
        models = {k: zf.read(member) for k, (member, _) in MODELS.items()}

    image = cv2.cvtColor(cv2.imread(str(REPO / "tests" / "fixtures" / "astronaut.png")), cv2.COLOR_BGR2RGB)
    det = BundledFaceDetector("short")
    inputs = {"short": det.detection_input(image)[0][None]}
    inputs["full"] = BundledFaceDetector("full").detection_input(image)[0][None]
    face = det.detect(image)[0]
    inputs["mesh"] = warp_roi(image, face.extra["roi"], det.config.mesh.input_size)[None]
    icfg = det.config.iris
    inputs["iris"] = np.stack(
        [
            warp_roi(image, eye_rect(face.landmarks, icfg.left_corners, icfg.roi_scale), 64),
            warp_roi(image, eye_rect(face.landmarks, icfg.right_corners, icfg.roi_scale), 64, flip=True),
        ]
    )

    tensors = {}
    for key, crop in inputs.items():
        scale, offset = INPUT_RANGE[key]
        x = crop.astype(np.float32) * np.float32(scale) + np.float32(offset)
        out0, out1 = run_litert(models[key], x)
        tensors[f"{key}.input"] = np.ascontiguousarray(crop)
        tensors[f"{key}.out0"] = out0.astype(np.float32)
        tensors[f"{key}.out1"] = out1.astype(np.float32)
    meta = {
        "fixture": "mediapipe_litert",
        "kind": "crop",
        "image": "astronaut.png",
        "runtime": f"ai-edge-litert {version('ai-edge-litert')}",
        "wheel": wheel.name,
        "models": {k: {"file": MODELS[k][0], "sha256": hashlib.sha256(v).hexdigest()} for k, v in models.items()},
        "input_range": {k: {"scale": s, "offset": o} for k, (s, o) in INPUT_RANGE.items()},
        "outputs": {
            "short": ["regressors (1, 896*16)", "classificators (1, 896)"],
            "full": ["regressors (1, 2304*16)", "classificators (1, 2304)"],
            "mesh": ["landmarks (1, 468*3) input px", "presence logit (1, 1)"],
            "iris": ["eye contour (2, 71*3) input px", "iris (2, 5*3) input px; row 1 is the mirrored 362/263 eye"],
        },
        "mediapipe_box_xywh": MEDIAPIPE_BOX_XYWH,
    }
    from safetensors.numpy import save_file

    save_file(tensors, str(OUT), metadata={"json": json.dumps(meta)})
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
