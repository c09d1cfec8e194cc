"""Every model file the pack can use, as data: where it comes from on the Hugging Face Hub, where it goes under a
models folder, roughly how big it is and which feature needs it.

The nodes, the command line and the tests all read this one table. Targets follow ComfyUI-LivePortraitKJ's layout
(``liveportrait/*.safetensors``, ``liveportrait/animal/*.safetensors``), so the two packs share one download: that
pack fetches its files only when ``models/liveportrait`` (or ``liveportrait/animal``) does not exist, so a folder
this pack creates must hold every file it expects there. Optional files are fetched only when asked for by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from .checkpoints.joyvasa import GENERATOR_FILE, TEMPLATE_FILE
from .face.detectors.official import DET_FILE, LMK106_FILE, LMK203_FILE
from .liveportrait.slots import APPEARANCE, BASE_SLOTS, MOTION_EXTRACTOR, SLOTS, SPADE, STITCHING, WARPING

KIJAI_REPO = "Kijai/LivePortrait_safetensors"
KWAIVGI_REPO = "KwaiVGI/LivePortrait"
JOYVASA_REPO = "jdh-algo/JoyVASA"
DEFAULT_ENDPOINT = "https://huggingface.co"

# Features: what a job needs. LivePortrait variants use the loaders' names.
HUMAN = "human"
ANIMAL = "animal"  # any animal set; fetched as v1.0, the set the reference's animal mode and LivePortraitKJ use
ANIMAL_V10 = "animal_v1.0"
ANIMAL_V11 = "animal_v1.1"
MOTION_GENERATOR = "motion_generator"
OFFICIAL_DETECTOR = "official_detector"
FEATURES: tuple[str, ...] = (HUMAN, ANIMAL, ANIMAL_V10, ANIMAL_V11, MOTION_GENERATOR, OFFICIAL_DETECTOR)
OPTIONAL_FEATURES: tuple[str, ...] = (OFFICIAL_DETECTOR,)

# How a downloaded file is checked before it takes its final name.
KIND_LIVEPORTRAIT = "liveportrait"
KIND_MOTION = "motion_generator"
KIND_TEMPLATE = "motion_template"
KIND_ONNX = "onnx"

MIT = "MIT"
INSIGHTFACE_LICENCE = "InsightFace buffalo_l: non-commercial research use only"

SHARED_LIVEPORTRAIT = "liveportrait"  # the folder ComfyUI-LivePortraitKJ owns and downloads into when it is absent


@dataclass(frozen=True)
class ModelFile:
    """One file: ``repo_id``/``revision``/``repo_path`` on the hub, ``folder``/``name`` under the models folder."""

    repo_id: str
    repo_path: str
    folder: str
    name: str
    approx_bytes: int
    features: tuple[str, ...]
    kind: str
    slot: str | None = None
    revision: str = "main"
    licence: str = MIT

    @property
    def target(self) -> str:
        """Path under the models folder, ``/``-separated."""
        return f"{self.folder}/{self.name}"

    @property
    def optional(self) -> bool:
        return all(f in OPTIONAL_FEATURES for f in self.features)

    def url(self, endpoint: str | None = None) -> str:
        """The hub's download URL (``endpoint`` as ``HF_ENDPOINT`` sets it)."""
        base = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        return f"{base}/{self.repo_id}/resolve/{self.revision}/{self.repo_path}"


# Sizes of the fp32 community files (the hub's listing); the others are rounded.
_SLOT_BYTES = {
    APPEARANCE: 3_361_936,
    MOTION_EXTRACTOR: 112_496_256,
    WARPING: 182_000_000,
    SPADE: 221_771_768,
    STITCHING: 912_000,
}
_ANIMAL_V11_DIR = "liveportrait_animals/base_models_v1.1"


def _liveportrait_set() -> list[ModelFile]:
    files = []
    for slot in SLOTS:
        name = f"{slot}.safetensors"
        files.append(ModelFile(KIJAI_REPO, name, SHARED_LIVEPORTRAIT, name, _SLOT_BYTES[slot], (HUMAN,),
                               KIND_LIVEPORTRAIT, slot))
        files.append(ModelFile(KIJAI_REPO, f"animal/{name}", f"{SHARED_LIVEPORTRAIT}/animal", name,
                               _SLOT_BYTES[slot], (ANIMAL_V10, ANIMAL), KIND_LIVEPORTRAIT, slot))
    for slot in BASE_SLOTS:  # v1.1 animals exist only as the official .pth; they use the human stitching file
        files.append(ModelFile(KWAIVGI_REPO, f"{_ANIMAL_V11_DIR}/{slot}.pth", _ANIMAL_V11_DIR, f"{slot}.pth",
                               _SLOT_BYTES[slot], (ANIMAL_V11,), KIND_LIVEPORTRAIT, slot))
    files.append(ModelFile(KWAIVGI_REPO, f"liveportrait/retargeting_models/{STITCHING}.pth",
                           "liveportrait_animals/retargeting_models", f"{STITCHING}.pth", _SLOT_BYTES[STITCHING],
                           (ANIMAL_V11,), KIND_LIVEPORTRAIT, STITCHING))
    return files


MANIFEST: tuple[ModelFile, ...] = (
    *_liveportrait_set(),
    ModelFile(JOYVASA_REPO, f"motion_generator/{GENERATOR_FILE}", "joyvasa", GENERATOR_FILE, 413_000_000,
              (MOTION_GENERATOR,), KIND_MOTION),
    ModelFile(JOYVASA_REPO, f"motion_template/{TEMPLATE_FILE}", "joyvasa", TEMPLATE_FILE, 3_600,
              (MOTION_GENERATOR,), KIND_TEMPLATE),
    ModelFile(KWAIVGI_REPO, f"insightface/models/buffalo_l/{DET_FILE}", "insightface/models/buffalo_l", DET_FILE,
              16_900_000, (OFFICIAL_DETECTOR,), KIND_ONNX, licence=INSIGHTFACE_LICENCE),
    ModelFile(KWAIVGI_REPO, f"insightface/models/buffalo_l/{LMK106_FILE}", "insightface/models/buffalo_l",
              LMK106_FILE, 5_000_000, (OFFICIAL_DETECTOR,), KIND_ONNX, licence=INSIGHTFACE_LICENCE),
    ModelFile(KIJAI_REPO, LMK203_FILE, SHARED_LIVEPORTRAIT, LMK203_FILE, 115_000_000, (OFFICIAL_DETECTOR,),
              KIND_ONNX),
)


def files_for(*features: str) -> list[ModelFile]:
    """The manifest entries ``features`` need, in manifest order (an unknown name is a ValueError)."""
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise ValueError(f"unknown model feature(s) {unknown}; known: {', '.join(FEATURES)}")
    return [f for f in MANIFEST if set(f.features) & set(features)]


def liveportrait_feature(variant: str) -> str:
    """The feature of a LivePortrait loader variant (``human``, ``animal``, ``animal_v1.0``, ``animal_v1.1``)."""
    if variant not in (HUMAN, ANIMAL, ANIMAL_V10, ANIMAL_V11):
        raise ValueError(f"LivePortrait variant {variant!r} is unknown; use human, animal_v1.0 or animal_v1.1.")
    return variant
