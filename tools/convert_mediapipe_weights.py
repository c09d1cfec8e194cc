"""Convert MediaPipe's bundled face models (mediapipe 0.10.21 wheel, Apache-2.0) into one safetensors file.

Reproducible: downloads the wheel with ``pip download --no-deps`` (or takes ``--wheel``), reads the four TFLite
files from it, parses them with the ``tflite`` flatbuffer schema package (requirements-tools.txt), resolves the
fp16 weights behind DEQUANTIZE ops and the sparse weights behind DENSIFY ops, and fills the plain-torch networks of
``joyvasa_core.face.detectors`` in graph order. Writes ``joyvasa_core/face/weights/mediapipe_face.safetensors``
(weights keep their stored precision: fp16 where the TFLite file holds fp16) and the licence notice.

The runtime never needs this script, the wheel or the ``tflite`` package.

    python tools/convert_mediapipe_weights.py [--wheel PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from joyvasa_core.face.detectors.blazeface import BlazeFaceFullNet, BlazeFaceShortNet  # noqa: E402
from joyvasa_core.face.detectors.facemesh import FaceMeshNet  # noqa: E402
from joyvasa_core.face.detectors.iris import IrisNet  # noqa: E402
from joyvasa_core.face.detectors.mp_layers import TFConv2d, TFPReLU  # noqa: E402

MEDIAPIPE_VERSION = "0.10.21"
WHEEL_NAME = f"mediapipe-{MEDIAPIPE_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"

# state-dict prefix -> (file inside the wheel, network class)
MODELS = {
    "short": ("mediapipe/modules/face_detection/face_detection_short_range.tflite", BlazeFaceShortNet),
    "full": ("mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite", BlazeFaceFullNet),
    "mesh": ("mediapipe/modules/face_landmark/face_landmark.tflite", FaceMeshNet),
    "iris": ("mediapipe/modules/iris_landmark/iris_landmark.tflite", IrisNet),
}

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "PRELU")


def tflite_layers(module: torch.nn.Module) -> Iterator[tuple[str, torch.nn.Module]]:
    """The weight-carrying layers in registration order: the order the converter fills them."""
    for name, sub in module.named_modules():
        if isinstance(sub, (TFConv2d, TFPReLU)):
            yield name, sub


def download_wheel(dest: Path) -> Path:
    """``pip download`` the manylinux cp311 x86-64 wheel (the models are identical in every platform's wheel)."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", f"mediapipe=={MEDIAPIPE_VERSION}",
        "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--only-binary=:all:", "-d", str(dest),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    return dest / WHEEL_NAME


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _densify(tensor, raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Expand a TFLite sparse tensor whose leading dims are DENSE and whose last dim is SPARSE_CSR."""
    import tflite

    sp = tensor.Sparsity()
    order = sp.TraversalOrderAsNumpy()
    if sp.BlockMapLength() or list(order) != list(range(len(shape))):
        raise NotImplementedError("only identity traversal order without blocks is supported")
    dims = [sp.DimMetadata(d) for d in range(sp.DimMetadataLength())]
    if any(d.Format() != 0 for d in dims[:-1]) or dims[-1].Format() != 1:
        raise NotImplementedError("only dense leading dims with a CSR last dim are supported")

    def vector(kind: int, table) -> np.ndarray:
        cls = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]
        vec = cls()
        vec.Init(table.Bytes, table.Pos)
        return vec.ValuesAsNumpy().astype(np.int64)

    last = dims[-1]
    segments = vector(last.ArraySegmentsType(), last.ArraySegments())
    indices = vector(last.ArrayIndicesType(), last.ArrayIndices())
    rows = int(np.prod(shape[:-1]))
    dense = np.zeros((rows, shape[-1]), dtype=raw.dtype)
    for r in range(rows):
        lo, hi = segments[r], segments[r + 1]
        dense[r, indices[lo:hi]] = raw[lo:hi]
    return dense.reshape(shape)


def _constant(model, graph, index: int) -> np.ndarray:
    tensor = graph.Tensors(index)
    dtype = {0: np.float32, 1: np.float16, 2: np.int32}[tensor.Type()]
    raw = np.frombuffer(model.Buffers(tensor.Buffer()).DataAsNumpy().tobytes(), dtype=dtype)
    shape = tuple(int(v) for v in tensor.ShapeAsNumpy())
    if tensor.Sparsity() is not None:
        return _densify(tensor, raw, shape)
    return raw.reshape(shape)


def graph_weights(data: bytes) -> list[tuple[str, list[np.ndarray]]]:
    """Weighted ops of a TFLite graph as (op name, [kernel, bias] or [alpha]) in torch registration order.

    Constants behind DEQUANTIZE / DENSIFY are resolved to the stored fp16 (or fp32) values. Ops that reach every
    graph output (the trunk) come first in graph order, then the ops that reach only output 0, then only output 1:
    the order in which the networks register their layers.
    """
    import tflite
    from tflite.BuiltinOperator import BuiltinOperator

    names = {v: k for k, v in BuiltinOperator.__dict__.items() if not k.startswith("_")}
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ins = [op.Inputs(j) for j in range(op.InputsLength())]
        outs = [op.Outputs(j) for j in range(op.OutputsLength())]
        ops.append((name, ins, outs))

    alias = {outs[0]: ins[0] for name, ins, outs in ops if name in ("DEQUANTIZE", "DENSIFY")}
    producers = {t: k for k, (_, _, outs) in enumerate(ops) for t in outs}
    outputs = [graph.Outputs(i) for i in range(graph.OutputsLength())]

    def upstream(tensor: int) -> set[int]:
        seen: set[int] = set()
        stack = [tensor]
        while stack:
            t = stack.pop()
            k = producers.get(t)
            if k is None or k in seen:
                continue
            seen.add(k)
            stack.extend(ops[k][1])
        return seen

    reach = [upstream(t) for t in outputs]
    keyed = []
    for k, (name, ins, _) in enumerate(ops):
        if name not in WEIGHTED_OPS:
            continue
        hits = [i for i, r in enumerate(reach) if k in r]
        group = 0 if len(hits) == len(outputs) else 1 + hits[0]
        arrays = []
        for t in ins[1:]:
            if t < 0:
                continue
            while t in alias:
                t = alias[t]
            arrays.append(_constant(model, graph, t))
        keyed.append(((group, k), name, arrays))
    keyed.sort(key=lambda item: item[0])
    return [(name, arrays) for _, name, arrays in keyed]


def fill_network(net: torch.nn.Module, weights: list[tuple[str, list[np.ndarray]]], prefix: str) -> dict:
    """Map the graph's weights onto the network's TFLite layers, converting NHWC kernels to torch layouts."""
    layers = list(tflite_layers(net))
    if len(layers) != len(weights):
        raise ValueError(f"{prefix}: network has {len(layers)} weighted layers, graph has {len(weights)}")
    state = {}
    for (lname, layer), (op, arrays) in zip(layers, weights, strict=True):
        if isinstance(layer, TFPReLU):
            if op != "PRELU":
                raise ValueError(f"{prefix}.{lname}: expected PRELU, graph has {op}")
            tensors = {"weight": arrays[0].reshape(-1)}
        else:
            expected = "DEPTHWISE_CONV_2D" if layer.depthwise else "CONV_2D"
            if op != expected or not isinstance(layer, TFConv2d):
                raise ValueError(f"{prefix}.{lname}: expected {expected}, graph has {op}")
            kernel = arrays[0]
            kernel = kernel.transpose(3, 0, 1, 2) if layer.depthwise else kernel.transpose(0, 3, 1, 2)
            tensors = {"weight": kernel, "bias": arrays[1]}
        for key, value in tensors.items():
            target = getattr(layer, key)
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"{prefix}.{lname}.{key}: graph shape {value.shape} != {tuple(target.shape)}")
            state[f"{prefix}.{lname}.{key}"] = torch.from_numpy(np.array(value, copy=True))
    net.load_state_dict({k[len(prefix) + 1 :]: v.float() for k, v in state.items()}, strict=True)
    return state


LICENSE_NOTICE = """\
mediapipe_face.safetensors holds the weights of four Google MediaPipe models, converted without change of values
(fp16 weights stay fp16, the sparse full-range detector weights are expanded to dense) from the TFLite files in the
mediapipe {version} wheel on PyPI ({wheel}):

{files}

MediaPipe and these models are Copyright Google LLC, licensed under the Apache License, Version 2.0.
The conversion script is tools/convert_mediapipe_weights.py of this repository.

You may not use these files except in compliance with the License. You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software distributed under the License is distributed
on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the License for
the specific language governing permissions and limitations under the License.

The text of the License, as shipped in the wheel's {license_member}:

{license_text}
"""


def convert(wheel: Path, out: Path) -> None:
    from safetensors.torch import save_file

    wheel_bytes = wheel.read_bytes()
    state: dict[str, torch.Tensor] = {}
    sources = {}
    with zipfile.ZipFile(wheel) as zf:
        license_member = f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE"
        license_text = zf.read(license_member).decode()
        # The wheel's file continues with third-party notices of the compiled code, which these weights don't use.
        end = license_text.index("END OF TERMS AND CONDITIONS") + len("END OF TERMS AND CONDITIONS")
        license_text = license_text[:end]
        for prefix, (member, cls) in MODELS.items():
            data = zf.read(member)
            sources[prefix] = {"file": member, "bytes": len(data), "sha256": sha256(data)}
            state.update(fill_network(cls(), graph_weights(data), prefix))
    meta = {
        "source": f"mediapipe=={MEDIAPIPE_VERSION}",
        "wheel": wheel.name,
        "wheel_sha256": sha256(wheel_bytes),
        "license": "Apache-2.0 (Google MediaPipe models)",
        "models": sources,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sorted(state.items())}, str(out), metadata={"json": json.dumps(meta)})
    files = "\n".join(f"  {s['file']}  ({s['bytes']} bytes, sha256 {s['sha256']})" for s in sources.values())
    notice = LICENSE_NOTICE.format(
        version=MEDIAPIPE_VERSION,
        wheel=wheel.name,
        files=files,
        license_member=license_member,
        license_text=license_text,
    )
    (out.parent / "LICENSE-mediapipe.txt").write_text(notice)
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(state)} tensors)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="an already downloaded mediapipe 0.10.21 wheel")
    parser.add_argument("--out", type=Path, default=REPO / "joyvasa_core/face/weights/mediapipe_face.safetensors")
    args = parser.parse_args()
    if args.wheel:
        convert(args.wheel, args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        convert(download_wheel(Path(tmp)), args.out)


if __name__ == "__main__":
    main()
