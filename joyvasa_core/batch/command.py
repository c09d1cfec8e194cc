"""``python -m joyvasa_core batch MANIFEST --out-dir DIR``: many videos in one run.

Every row is checked before any model loads (all bad rows reported at once, exit 2, nothing written, unless
``--skip-invalid``); rows whose output is already complete are skipped, so a rerun resumes; a row that fails while
running is reported and the batch goes on. Exit 0 when every row succeeded, 1 when some failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import JoyVASAError, OptionError
from ..validate import CLI, number_problem
from .report import INVALID, Report, RowResult, report_path, skipped
from .rows import Row, RowError

EXIT_FAILED_ROWS = 1
# The single job's options that the batch takes for all rows, with the single job's meaning.
GLOBAL_OPTIONS = ("models", "download", "device", "dtype", "detector", "detector_range", "quiet")


def build_batch_parser() -> argparse.ArgumentParser:
    from ..cli import OneLineParser, build_parser

    single = {a.dest: a for a in build_parser()._actions}
    p = OneLineParser(prog="python -m joyvasa_core batch",
                      description="Many videos in one run: one row per video in a CSV or JSON Lines manifest.")
    p.add_argument("manifest", help="CSV (header row) or JSON Lines: image, audio (or motion, or driving_video), out, "
                   "and any per-job option of the single command, named as it names them; relative paths are "
                   "relative to the manifest's folder")
    p.add_argument("--out-dir", required=True, help="folder the rows' outputs (their 'out' names) and the report "
                   "(<manifest>.report.jsonl) are written to; created when missing")
    p.add_argument("--skip-invalid", action="store_true", help="run the good rows and report the bad ones (default: "
                   "refuse the whole manifest, nothing written)")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS", help="run the rows on Ray actors: auto = the "
                   "running cluster, or its address; no value: RAY_ADDRESS, else a cluster started here with "
                   "`ray start`, else a local Ray for this batch (needs requirements-ray.txt)")
    p.add_argument("--workers", type=int, help="Ray actors [one per GPU; on CPUs one per --cpus-per-worker CPUs]")
    p.add_argument("--cpus-per-worker", type=int, default=4, help="CPUs each Ray actor takes on a cluster without "
                   "GPUs (its torch threads) [4]")
    p.add_argument("--retries", type=int, default=2, help="times a row is retried on another actor when its actor or "
                   "node dies [2]")
    for dest in GLOBAL_OPTIONS:
        p._add_action(single[dest])
    return p


def _folders(made: list[Path]):
    """A ``make_folder`` that records what it creates, so a refused manifest leaves no folder behind."""

    def make(folder: Path) -> None:
        missing = [f for f in (folder, *folder.parents) if not f.exists()]
        for f in reversed(missing):
            f.mkdir()
            made.append(f)

    return make


def _unmake(made: list[Path]) -> None:
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:
            pass


def _check_batch_options(args: argparse.Namespace) -> None:
    """The batch's own options, before the manifest is read; with ``--ray``, Ray itself (an optional package)."""
    problem = number_problem({"workers": args.workers, "cpus_per_worker": args.cpus_per_worker,
                              "retries": args.retries}, CLI)
    if problem:
        raise OptionError(problem)
    if args.ray is not None:
        from .ray_runner import import_ray

        import_ray()


def run_batch(args: argparse.Namespace) -> int:
    from ..cli import build_parser
    from ..partials import remove_stale_partials
    from .manifest import read_manifest
    from .rows import plan_rows

    _check_batch_options(args)
    manifest = read_manifest(args.manifest)
    out_dir = Path(args.out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise JoyVASAError(f"--out-dir {out_dir}: is a file; give a folder for the videos.")
    made: list[Path] = []
    try:
        _folders(made)(out_dir)
        shared = {k: getattr(args, k) for k in GLOBAL_OPTIONS if k != "quiet"}
        shared["models"] = str(Path(args.models).expanduser().absolute())  # the same folder on every worker
        rows, problems = plan_rows(manifest, out_dir, build_parser(), shared, _folders(made))
    except BaseException:
        _unmake(made)
        raise
    if problems and not args.skip_invalid:
        _unmake(made)
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"error: {len(problems)} of {len(manifest.rows)} rows are invalid; nothing was run. Fix them, or pass "
              "--skip-invalid to run the others.", file=sys.stderr)
        return 2
    for folder in {p.parent for r in rows for p in r.outputs.values()}:
        remove_stale_partials(folder)
    return _run_rows(args, manifest.path, out_dir, rows, problems)


def _run_rows(args: argparse.Namespace, manifest: Path, out_dir: Path, rows: list[Row], problems: list[RowError]
              ) -> int:
    from .progress import BatchProgress

    path = report_path(out_dir, manifest)
    todo = []
    with Report(path) as report:
        bar = BatchProgress(len(rows) + len(problems), args.quiet)

        def finished(result: RowResult) -> None:
            report.add(result)
            bar.finished(result.line(), result.ok)

        try:
            for problem in problems:
                finished(RowResult(row=problem.row or 0, status=INVALID, error=str(problem)))
            for row in rows:
                done = skipped(row.number, row.out)
                if done is not None:
                    finished(done)
                else:
                    todo.append(row)
            if todo:
                _runner(args)(todo, finished)
        finally:
            bar.close()
        results = report.results
    failed = [r for r in results if not r.ok]
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed", "invalid")}
    if not args.quiet or failed:
        print(f"batch: {', '.join(f'{n} {s}' for s, n in counts.items() if n)} of {len(results)} rows; report "
              f"{path}", file=sys.stderr)
    return EXIT_FAILED_ROWS if failed else 0


def _runner(args: argparse.Namespace):
    """The local runner, or the Ray runner when ``--ray`` is given (Ray imported only then)."""
    if args.ray is None:
        from .local import run_local

        return run_local
    from .ray_runner import RayOptions, run_on_ray

    address = args.ray or os.environ.get("RAY_ADDRESS") or None
    options = RayOptions(address=address, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                         retries=args.retries, device=args.device)
    return lambda rows, finished: run_on_ray(rows, finished, options)


def main(argv: list[str] | None = None) -> int:
    from ..cli import exit_status

    args = build_batch_parser().parse_args(argv)
    return exit_status(lambda: run_batch(args), "finished rows are kept, run the same command again to do the rest")
