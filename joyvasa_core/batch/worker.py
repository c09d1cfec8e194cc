"""Runs rows on models loaded once: the networks stay loaded between rows, a speech's motion is sampled once per
content key and a portrait's face and appearance are prepared once per content key.

The local runner holds one ``Worker``; on Ray each actor holds one.
"""

from __future__ import annotations

import os
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import JoyVASAError
from .keys import portrait_key, samples_digest, seed_from, speech_key
from .report import DONE, FAILED, RowResult

PORTRAITS_KEPT = 16  # prepared faces held per worker (a face + appearance is a few MB)
MOTIONS_KEPT = 64


@dataclass(frozen=True)
class Globals:
    """The batch command's options every row shares: where the models are and how they run."""

    models: str
    download: bool = True
    device: str = "auto"
    dtype: str = "auto"
    detector: str = "auto"
    detector_range: str = "auto"


class Lru(OrderedDict):
    """At most ``size`` entries, the least recently used dropped first."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class Worker:
    """Loaded models and the work rows share. ``counts`` says how often each stage really ran (for the report and
    the tests): motions sampled, portraits prepared, model sets loaded."""

    def __init__(self, settings: Globals, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.model_sets: dict[bool, Any] = {}
        self.portraits = Lru(PORTRAITS_KEPT)
        self.motions = Lru(MOTIONS_KEPT)
        self.counts = {"models_loaded": 0, "motions_sampled": 0, "portraits_prepared": 0}

    def pid(self) -> int:
        return os.getpid()

    def _models(self, animal: bool) -> Any:
        """The model set of a human or animal row, loaded (and fetched when missing) on first use."""
        if animal not in self.model_sets:
            from ..download import download_missing
            from ..model_files import ANIMAL, HUMAN, MOTION_GENERATOR
            from ..models import load_models

            s = self.settings
            download_missing(s.models, [ANIMAL if animal else HUMAN, MOTION_GENERATOR], allow=s.download)
            self.model_sets[animal] = load_models(s.models, animal=animal, device=s.device, dtype=s.dtype,
                                                  detector=s.detector, detector_range=s.detector_range)
            self.counts["models_loaded"] += 1
        return self.model_sets[animal]

    def run(self, number: int, options: dict[str, Any], motion: Any = None) -> tuple[RowResult, str | None, Any]:
        """One row: (its result, its speech key, the motion it used) — the motion goes back to the driver so other
        workers reuse it. ``motion`` is a motion another worker already sampled for this row's speech."""
        t0 = time.perf_counter()
        try:
            result, key, used = self._run(number, options, motion)
        except JoyVASAError as exc:
            return RowResult(row=number, status=FAILED, out=options.get("out"), error=exc.for_cli(),
                             seconds=round(time.perf_counter() - t0, 3), worker=self.name), None, None
        except (RuntimeError, MemoryError, OSError, ValueError) as exc:  # out of memory, a corrupt file, ...
            return RowResult(row=number, status=FAILED, out=options.get("out"),
                             error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                             seconds=round(time.perf_counter() - t0, 3), worker=self.name), None, None
        result.seconds = round(time.perf_counter() - t0, 3)
        return result, key, used

    def _run(self, number: int, o: dict[str, Any], motion: Any) -> tuple[RowResult, str | None, Any]:
        import torch

        from ..audio.io import load_audio
        from ..checkpoints.motion_file import read_motion_file
        from ..cli import read_image
        from ..pipeline import (
            Animation,
            animate_options,
            compute_target_keypoints,
            encode_audio,
            extract_appearance,
            load_reference_face,
            paste_back_for,
            sample_motion,
        )

        models = self._models(bool(o.get("animal")))
        lp = models.liveportrait
        wave = load_audio(o["audio"]) if o.get("audio") else None
        digest = samples_digest(wave) if wave is not None else None
        sampling: dict[str, Any] = {"seed": o["seed"] if o.get("seed") is not None else seed_from(digest or "0" * 16),
                                    "scheduler": o.get("sampler") or "ddpm",
                                    "lag_compensation": not o.get("reference_lag")}
        if o.get("cfg_scale") is not None:
            sampling["cfg_scale"] = o["cfg_scale"]
        if o.get("steps") is not None:
            sampling["num_steps"] = o["steps"]
        options = animate_options(preset=o.get("preset") or "web", animal=bool(o.get("animal")),
                                  batch_size=o.get("batch_size"), sampling=sampling,
                                  reference={"face_index": o.get("face_index") or 0})
        image_path = Path(o["image"])
        pkey = portrait_key(image_path.read_bytes(), {"reference": repr(options.reference)})
        prepared = self.portraits.get(pkey)
        portrait = "reused"
        if prepared is None:
            reference = load_reference_face(read_image(str(image_path)), models.detector, options.reference)
            prepared = (reference, extract_appearance(lp, reference))
            self.portraits.put(pkey, prepared)
            self.counts["portraits_prepared"] += 1
            portrait = "prepared"
        reference, appearance = prepared
        key = speech_key(digest, vars(options.sampling)) if digest else None
        with torch.inference_mode():
            features = encode_audio(wave, None, leading_silence=options.sampling.leading_silence) if wave is not None \
                else None
            if o.get("motion"):
                motion, how = read_motion_file(o["motion"]), "file"
            elif motion is None and (motion := self.motions.get(key)) is None:
                features = encode_audio(wave, models.motion_model, leading_silence=options.sampling.leading_silence)
                motion, how = sample_motion(models.motion_model, features, options.sampling), "sampled"
                self.counts["motions_sampled"] += 1
            else:
                how = "reused"
            if key:
                self.motions.put(key, motion)
            keypoints = compute_target_keypoints(lp, appearance, motion, options.keypoints)
            paster = paste_back_for(reference, 0, lp.crop_size, options.keypoints.stitching) \
                if options.paste_back else None
            job = Animation(reference=reference, appearance=appearance, audio=features, motion=motion,
                            keypoints=keypoints, paste_back=paster, options=options)
            video = job.write_video(lp, o["out"], crf=o.get("crf") or 18)
        result = RowResult(row=number, status=DONE, out=str(video.path), frames=video.n_frames,
                           duration=round(video.n_frames / video.fps, 3), motion=how, portrait=portrait,
                           worker=self.name)
        return result, key, motion
