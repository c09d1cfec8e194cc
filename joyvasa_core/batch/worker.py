"""Runs rows on models loaded once: each row goes through the single job's own steps (``job.plan_job`` ->
``check_job`` -> ``run_job``), with the loaded networks kept between rows and a ``StageCache`` that hands back a
motion already sampled for the same speech content and settings, and a face already prepared for the same pixels and
crop options.

The local runner holds one ``Worker``; on Ray each actor holds one.
"""

from __future__ import annotations

import os
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from ..errors import JoyVASAError
from ..job import JobInputs, JobPlan, ModelsPlan, StageCache
from .keys import array_digest, portrait_key, speech_key
from .report import DONE, FAILED, RowResult

PORTRAITS_KEPT = 16  # prepared faces held per worker (a face and its appearance: a few MB)
MOTIONS_KEPT = 64  # sampled motions (a few hundred KB for a minute of speech)


class Lru(OrderedDict):
    """At most ``size`` entries, the least recently used dropped first."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def take(self, key: str) -> Any:
        if key not in self:
            return None
        self.move_to_end(key)
        return self[key]

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class ContentCache(StageCache):
    """One row's view of its worker's kept work; ``used`` says what the row made and what it reused."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.used: dict[str, str] = {}
        self.speech_key: str | None = None

    def _kept(self, store: Lru, key: str, make: Callable[[], Any], stage: str, made: str) -> Any:
        value = store.take(key)
        if value is None:
            value = make()
            store.put(key, value)
            self.used[stage] = made
        else:
            self.used[stage] = "reused"
        return value

    def motion(self, plan: JobPlan, inputs: JobInputs, make: Callable[[], Any]) -> Any:
        self.speech_key = speech_key(array_digest(inputs.speech), asdict(plan.options.sampling))
        return self._kept(self.worker.motions, self.speech_key, make, "motion", "sampled")

    def face(self, plan: JobPlan, inputs: JobInputs, make: Callable[[], Any]) -> Any:
        m = plan.models
        crop = {"reference": repr(plan.options.reference), "models": [m.root, m.animal, m.device, m.dtype, m.detector,
                                                                     m.detector_range]}
        return self._kept(self.worker.portraits, portrait_key(array_digest(inputs.image), crop), make, "portrait",
                          "prepared")


def _serves(held: ModelsPlan, need: ModelsPlan) -> bool:
    """Whether models loaded for ``held`` run a job that needs ``need``."""
    same = ("root", "animal", "device", "dtype", "detector", "detector_range")
    return (all(getattr(held, k) == getattr(need, k) for k in same) and held.motion_model >= need.motion_model
            and held.face_detector >= need.face_detector)


class Worker:
    """Loaded models and the work rows share (each row's result says what it made and what it reused)."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.model_sets: dict[ModelsPlan, Any] = {}
        self.portraits = Lru(PORTRAITS_KEPT)
        self.motions = Lru(MOTIONS_KEPT)

    def models(self, plan: JobPlan) -> Any:
        """The loaded models of ``plan``: ones already held when they serve it, else loaded (fetched if allowed)."""
        from ..job import check_models, load_job_models

        for held, models in self.model_sets.items():
            if _serves(held, plan.models):
                check_models(plan, models)
                return models
        models, _ = load_job_models(plan)
        self.model_sets[plan.models] = models
        return models

    def run(self, number: int, values: dict[str, Any]) -> tuple[RowResult, str | None, Any]:
        """One row (the single job's options): its result, its speech key and the motion kept for it (the driver
        hands it to other workers). A row that fails is a result with its one-line error, never an exception."""
        from ..job import JobReport, check_job, plan_job, run_job

        t0 = time.perf_counter()
        cache = ContentCache(self)
        result = RowResult(row=number, status=FAILED, out=values.get("out"), worker=self.name)
        try:
            plan = plan_job(values)
            video = run_job(plan, self.models(plan), check_job(plan), JobReport(), cache)
            result.status, result.out, result.frames = DONE, str(video.path), video.n_frames
            result.duration, result.seed = round(video.n_frames / video.fps, 3), plan.seed
            result.motion, result.portrait = cache.used.get("motion"), cache.used.get("portrait")
        except JoyVASAError as exc:
            result.error = exc.for_cli()
        except Exception as exc:  # out of memory, a file that turns out corrupt, a bug: this row fails, others go on
            result.error = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
        result.seconds = round(time.perf_counter() - t0, 3)
        key = cache.speech_key
        return result, key, self.motions.take(key) if key else None
