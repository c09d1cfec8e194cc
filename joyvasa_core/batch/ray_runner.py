"""The batch on a Ray cluster: actors that keep the models loaded, rows handed to whichever actor is free.

* One actor per GPU (``num_gpus=1``) where the cluster has GPUs; on CPUs one actor per ``cpus_per_worker`` CPUs
  (default 4, its torch threads): a talking-head row is a chain of small convolutions that stops scaling at a few
  threads, so several actors of a few CPUs each render more rows per hour than one actor holding them all.
* Only the driver touches the user's files: it puts each input file's bytes into Ray's object store once (a speech
  shared by ten rows travels once), the actor writes the video in its own temporary folder and returns its bytes,
  and the driver writes them under the final name with the partial-file rule. So the cluster needs no shared
  storage, an output is written exactly once even when an actor dies after rendering, and a killed driver leaves
  only what ``partials`` cleans up.
* A speech used by several rows is sampled once: the first row of a speech goes out alone, its motion comes back
  with its result, and the other rows of that speech carry it to whichever actor they go to.
* An actor that dies (its process killed, its node lost) is restarted by Ray (``max_restarts``) and its row is
  retried on the next free actor, at most ``retries`` times; every other row carries on.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import JoyVASAError
from ..partials import atomic_path
from .report import FAILED, RowResult
from .rows import OUTPUTS, Row
from .worker import Worker

PACKAGE = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RayOptions:
    """``address``: None = RAY_ADDRESS, else a local ``ray start`` cluster, else a new local Ray."""

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: int = 4
    retries: int = 2
    device: str = "auto"


def import_ray() -> Any:
    """Ray, or one line saying how to get it (it is an optional dependency)."""
    try:
        import ray
    except ImportError:
        raise JoyVASAError("--ray: the optional 'ray' package is not installed; install it with `pip install -c "
                           "constraints.txt -r requirements-ray.txt`, or run without --ray on this machine.") from None
    return ray


@dataclass(frozen=True)
class ActorShape:
    """How many actors and what each one asks Ray for."""

    count: int
    num_cpus: float
    num_gpus: float
    device: str


def actor_shape(resources: dict[str, float], options: RayOptions, rows: int) -> ActorShape:
    """One actor per GPU (unless ``--device cpu``), else one per ``cpus_per_worker`` CPUs; never more actors than
    rows."""
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if gpus and (options.device == "auto" or options.device.startswith("cuda")):
        count, shape = gpus, (1.0, 1.0, "cuda")
    else:
        share = max(1, options.cpus_per_worker)
        count, shape = max(1, cpus // share), (float(min(share, max(cpus, 1))), 0.0, "cpu")
    count = min(options.workers or count, rows)
    if count < 1:
        raise JoyVASAError("--ray: the cluster has no CPU or GPU to run a worker on; add a node or drop --ray.")
    return ActorShape(count, *shape)


class RayWorker:
    """A ``Worker`` inside a Ray actor: inputs arrive as bytes, outputs leave as bytes."""

    def __init__(self, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.worker = Worker()
        self.folder = Path(tempfile.mkdtemp(prefix="joyvasa-batch-"))

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _local(self, files: dict[str, tuple[str, Any]]) -> dict[str, str]:
        import ray

        paths = {}
        for key, (name, ref) in files.items():
            data = ray.get(ref)
            folder = self.folder / hashlib.sha256(data).hexdigest()[:32]
            path = folder / name
            if not path.exists():
                folder.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as partial:
                    partial.write_bytes(data)
            paths[key] = str(path)
        return paths

    def run(self, number: int, values: dict[str, Any], files: dict[str, tuple[str, Any]],
            motion: tuple[str, Any] | None) -> tuple[RowResult, str | None, Any, dict[str, bytes]]:
        """One row with its inputs' bytes; returns the result, the speech key and motion, and the outputs' bytes."""
        out_dir = Path(tempfile.mkdtemp(dir=self.folder, prefix=f"row{number}-"))
        local = {**values, **self._local(files)}
        local.update({k: str(out_dir / f"{k}{Path(values[k]).suffix}") for k in OUTPUTS if values.get(k)})
        if motion is not None:
            import ray

            key, ref = motion
            self.worker.motions.put(key, ray.get(ref))
        try:
            result, key, used = self.worker.run(number, local)
            data = {k: Path(local[k]).read_bytes() for k in OUTPUTS if values.get(k) and Path(local[k]).is_file()}
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
        return result, key, used, data


def speech_group(row: Row) -> str | None:
    """Rows that will sample the same motion, known before any worker reads the speech: the same speech file bytes
    and the same sampling options (a worker then keys the motion by the decoded samples)."""
    audio = row.options.get("audio")
    if not audio or row.options.get("motion"):
        return None
    sampling = {k: row.options.get(k) for k in ("seed", "cfg_scale", "steps", "sampler", "preset", "reference_lag")}
    return hashlib.sha256(Path(audio).read_bytes()).hexdigest() + repr(sorted(sampling.items()))


@dataclass
class Dispatcher:
    """The driver's bookkeeping: rows waiting, which actor runs what, motions known per speech group."""

    rows: deque
    groups: dict[int, str | None]
    retries: int
    attempts: dict[int, int] = field(default_factory=dict)
    owners: dict[str, int] = field(default_factory=dict)  # speech group -> the row sampling its motion
    motions: dict[str, tuple[str, Any]] = field(default_factory=dict)  # speech group -> (key, motion ref)

    def next_row(self) -> Row | None:
        """The first waiting row that is not waiting for another row's motion."""
        for i, row in enumerate(self.rows):
            group = self.groups[row.number]
            if group is None or group in self.motions or group not in self.owners:
                del self.rows[i]
                if group is not None and group not in self.motions:
                    self.owners[group] = row.number
                return row
        return None

    def release(self, row: Row, key: str | None, motion_ref: Any) -> None:
        group = self.groups[row.number]
        if group is None:
            return
        if self.owners.get(group) == row.number:
            del self.owners[group]
        if key is not None and motion_ref is not None:
            self.motions[group] = (key, motion_ref)

    def retry(self, row: Row) -> bool:
        """Put ``row`` back at the front after its actor died; False when it has used its retries."""
        self.attempts[row.number] = self.attempts.get(row.number, 1) + 1
        if self.attempts[row.number] > self.retries + 1:
            return False
        self.rows.appendleft(row)
        return True


def _write_outputs(row: Row, data: dict[str, bytes]) -> None:
    for key, blob in data.items():
        with atomic_path(row.outputs[key]) as partial:
            partial.write_bytes(blob)


def _start(ray: Any, options: RayOptions) -> None:
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": True, "logging_level": "ERROR",
                              "runtime_env": {"py_modules": [str(PACKAGE)]}}
    if options.address is None:
        kwargs["include_dashboard"] = False
    try:
        ray.init(address=options.address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = options.address or "RAY_ADDRESS / the local cluster"
        raise JoyVASAError(f"--ray {where}: cannot connect ({(str(exc).splitlines() or [''])[0]}); check the address, "
                           "or start the cluster (`ray start --head`).") from None


def _input_refs(ray: Any, rows: list[Row]) -> dict[int, dict[str, tuple[str, Any]]]:
    """Each input file put into the object store once, however many rows read it."""
    refs: dict[Path, Any] = {}
    files = {}
    for row in rows:
        files[row.number] = {}
        for key, path in row.inputs.items():
            if path not in refs:
                refs[path] = ray.put(path.read_bytes())
            files[row.number][key] = (path.name, refs[path])
    return files


class RayBatch:
    """The driver's loop: rows to free actors, results back, dead actors restarted and their rows retried."""

    def __init__(self, ray: Any, rows: list[Row], finished: Callable[[RowResult], None], options: RayOptions) -> None:
        self.ray, self.finished, self.options = ray, finished, options
        shape = actor_shape(ray.cluster_resources(), options, len(rows))
        remote = ray.remote(num_cpus=shape.num_cpus, num_gpus=shape.num_gpus, max_restarts=options.retries,
                            max_task_retries=0)(RayWorker)
        self.actors = [remote.remote(int(shape.num_cpus) or 1) for _ in range(shape.count)]
        self.files = _input_refs(ray, rows)
        self.plan = Dispatcher(deque(rows), {r.number: speech_group(r) for r in rows}, options.retries)
        self.idle = list(self.actors)
        self.running: dict[Any, tuple[Any, Row]] = {}
        self.health: dict[Any, Any] = {}  # a ping to an actor that died, answered once Ray has restarted it

    def _dispatch(self) -> None:
        while self.idle and (row := self.plan.next_row()) is not None:
            actor = self.idle.pop()
            group = self.plan.groups[row.number]
            motion = self.plan.motions.get(group) if group else None
            self.running[actor.run.remote(row.number, row.options, self.files[row.number], motion)] = (actor, row)

    def _died(self, actor: Any) -> None:
        """Ping an actor whose row died with it: the ping waits while Ray restarts the actor (``max_task_retries``)
        and answers once it is back, or fails when the actor has used its ``max_restarts``."""
        self.health[actor.pid.options(max_task_retries=-1).remote()] = actor

    def _answered(self, ref: Any) -> None:
        actor = self.health.pop(ref)
        try:
            self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            return  # dead for good: its rows go to the others
        self.idle.append(actor)

    def _ended(self, ref: Any) -> None:
        actor, row = self.running.pop(ref)
        try:
            result, key, motion, data = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:  # a failure the worker did not catch: this row only
            self.idle.append(actor)
            self.plan.release(row, None, None)
            self.finished(RowResult(row=row.number, status=FAILED, out=str(row.out),
                                    error=f"{type(exc.cause).__name__}: {str(exc.cause).splitlines()[0]}"))
            return
        except self.ray.exceptions.RayActorError as exc:
            self._died(actor)
            self.plan.release(row, None, None)
            if not self.plan.retry(row):
                tries = self.options.retries + 1
                self.finished(RowResult(row=row.number, status=FAILED, out=str(row.out), attempts=tries,
                                        error=f"its Ray worker died {tries} times: {str(exc).splitlines()[0]}"))
            return
        self.plan.release(row, key, self.ray.put(motion) if motion is not None else None)
        self.idle.append(actor)
        if result.ok:
            _write_outputs(row, data)
        result.out = str(row.out)
        result.attempts = self.plan.attempts.get(row.number, 1)
        self.finished(result)

    def run(self) -> None:
        """Every row to its end."""
        while self.plan.rows or self.running or self.health:
            self._dispatch()
            if not self.running and not self.health:
                break
            ready, _ = self.ray.wait(list(self.running) + list(self.health), num_returns=1)
            (self._answered if ready[0] in self.health else self._ended)(ready[0])
        for row in self.plan.rows:
            self.finished(RowResult(row=row.number, status=FAILED, out=str(row.out),
                                    error="no Ray worker is left (each died more than --retries times); run again."))

    def close(self) -> None:
        """Remove the actors' temporary folders, then the actors."""
        try:
            self.ray.get([a.close.remote() for a in self.idle], timeout=60)
        except self.ray.exceptions.RayError:
            pass
        for actor in self.actors:
            self.ray.kill(actor)


def run_on_ray(rows: list[Row], finished: Callable[[RowResult], None], options: RayOptions) -> None:
    """Run ``rows`` on Ray actors, calling ``finished`` with each result as it ends."""
    ray = import_ray()
    _start(ray, options)
    try:
        batch = RayBatch(ray, rows, finished, options)
        try:
            batch.run()
        finally:
            batch.close()
    finally:
        ray.shutdown()
