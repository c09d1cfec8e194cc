"""Convert LivePortrait weight files (the official ``.pth`` release) to the community safetensors layout.

Each file is read the way the loader reads it (format sniffed, contents checked against its slot, the stitching
file's nested layout flattened) and written as ``<slot>.safetensors`` into ``--out``. The slot is the file stem
when it names one, else what the contents say. An existing output is never replaced; each file is written under a
temporary name and renamed when complete.

    python tools/convert_liveportrait.py base_models/*.pth retargeting_models/*.pth --out models/liveportrait
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from joyvasa_core.checkpoints.containers import read_checkpoint, require_tensor_dict  # noqa: E402
from joyvasa_core.checkpoints.identify import LABELS, identify_state_dict, unwrap  # noqa: E402
from joyvasa_core.checkpoints.liveportrait import (  # noqa: E402
    load_liveportrait_state_dict,
    normalize_stitching_state_dict,
)
from joyvasa_core.errors import JoyVASAError  # noqa: E402
from joyvasa_core.liveportrait.slots import SLOTS, STITCHING  # noqa: E402
from joyvasa_core.partials import atomic_path  # noqa: E402


def save_community_safetensors(
    state_dict: Mapping[str, Any],
    path: str | os.PathLike,
    slot: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write weights in the community safetensors layout (stitching flattened; other slots unchanged): contiguous,
    on the CPU, no shared storage (which safetensors refuses)."""
    from safetensors.torch import save_file

    sd: Mapping[str, Any] = unwrap(state_dict)
    if slot == STITCHING or identify_state_dict(sd) == STITCHING:
        sd = normalize_stitching_state_dict(sd)
    sd = require_tensor_dict(sd, path, "a state dict")
    out = {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}
    save_file(out, str(path), metadata=dict(metadata) if metadata else None)


def slot_of(path: Path) -> str:
    """The slot a weight file belongs to: its stem when that is a slot name, else its contents'."""
    if path.stem in SLOTS:
        return path.stem
    kind = identify_state_dict(read_checkpoint(path))
    if kind not in SLOTS:
        raise JoyVASAError(f"convert {path}: this is a {LABELS[kind]} file, not one of the LivePortrait networks.")
    return kind


def convert(path: Path, out_dir: Path) -> Path:
    """Write ``path`` as ``out_dir/<slot>.safetensors`` and return that path."""
    slot = slot_of(path)
    target = out_dir / f"{slot}.safetensors"
    if target.exists():
        raise JoyVASAError(f"convert {path}: {target} exists already; move it away or choose another --out.")
    state = load_liveportrait_state_dict(path, slot)
    with atomic_path(target) as partial:
        save_community_safetensors(state, partial, slot)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="official LivePortrait .pth files")
    parser.add_argument("--out", type=Path, required=True, help="folder for the .safetensors files")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for path in args.files:
            print(f"{path} -> {convert(path, args.out)}")
    except JoyVASAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
