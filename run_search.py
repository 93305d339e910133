"""Hyperparameter search for the Lab4 CVAE: Optuna TPE + ASHA on Ray Tune.

    python run_search.py --space spaces/quick.yaml
    python run_search.py --space spaces/quick.yaml --dry-run
    python run_search.py --space spaces/lab.yaml --data /data/lab4 --gpus-per-trial 0.25
    python run_search.py --space spaces/quick.yaml --resume        # continue runs/quick

Every user error (space file, data folder, options, resources) is one line on
stderr and exit code 2; all but the resource check happen before Ray starts. A
search that ran but gave no answer (every trial failed or diverged) exits 1,
after writing its files, so scripts and CI do not mistake it for a result.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

USER_ERROR = 2
NO_ANSWER = 1  # the search ran, but no trial produced a finite metric
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Search CVAE training strategies with Ray Tune, Optuna and ASHA.")
    p.add_argument("--space", required=True, help="search-space YAML file (e.g. spaces/quick.yaml)")
    p.add_argument("--data", help="dataset folder in the Lab4 layout (overrides data.root of the space)")
    p.add_argument("--name", help="experiment name: results go to STORAGE_PATH/NAME (default: the space's name)")
    p.add_argument("--storage-path", default="runs", help="folder holding experiments (default: runs/)")
    p.add_argument("--num-samples", type=int, help="number of trials (overrides trials.num_samples)")
    p.add_argument("--max-concurrent", type=int, help="trials at a time (overrides trials.max_concurrent)")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (overrides trials.resources.cpu)")
    p.add_argument("--gpus-per-trial", type=float,
                   help="GPUs per trial, fractions pack trials on one GPU (overrides trials.resources.gpu)")
    p.add_argument("--address", help="join an existing Ray cluster (e.g. 'auto' or HOST:6379) instead of starting one")
    p.add_argument("--resume", action="store_true", help="continue the interrupted experiment STORAGE_PATH/NAME")
    p.add_argument("--storage", metavar="URL",
                   help="the study's Optuna storage (default: sqlite:///STORAGE_PATH/NAME/optuna.db); any Optuna "
                        "URL (postgresql://..., mysql://...) or a journal file (journal:///shared/NAME.log), "
                        "e.g. for a multi-node cluster")
    p.add_argument("--dry-run", action="store_true", help="validate, print the space and the plan, start nothing")
    p.add_argument("--no-report", action="store_true", help="do not write report.html at the end")
    p.add_argument("--verbose", action="store_true",
                   help="show Ray Tune's own tables and logs here (default: in STORAGE_PATH/NAME/ray.log)")
    p.add_argument("--dashboard-host", default="127.0.0.1",
                   help="interface the Ray dashboard binds to (default 127.0.0.1: this machine only)")
    return p.parse_args(argv)


def _fail(message: str) -> int:
    print(f"run_search.py: error: {message}", file=sys.stderr)
    return USER_ERROR


def _user_errors() -> tuple[type[BaseException], ...]:
    from cvae.core.config import ConfigError
    from cvae.core.images import DataError
    from search.cluster import ResourceError
    from search.errors import SpaceError
    from search.record import StorageError
    from search.resume import ResumeError
    from search.run_lock import RunFolderBusy
    from search.runner import RunError

    errors: list[type[BaseException]] = [ConfigError, DataError, ResourceError, SpaceError, RunError, ResumeError,
                                         RunFolderBusy, StorageError]
    try:
        from cvae.core.staging import SyntheticError
        errors.append(SyntheticError)
    except ImportError:
        pass
    try:
        from cvae.core.checkpoint import CheckpointError
        errors.append(CheckpointError)
    except ImportError:
        pass
    return tuple(errors)


def _write_report(run_dir: Path) -> Optional[Path]:
    try:
        from reports.html import write_report
    except ImportError:
        return None
    out = run_dir / "report.html"
    write_report([run_dir], out)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    user_errors = _user_errors()
    from search.runner import make_plan

    try:
        plan = make_plan(args.space, data=args.data, name=args.name, storage_path=args.storage_path,
                         num_samples=args.num_samples, max_concurrent=args.max_concurrent,
                         cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                         resume=args.resume, storage=args.storage)
    except user_errors as err:
        return _fail(str(err))
    if args.dry_run:
        print(plan.space.describe())
        print(plan.describe())
        print("dry run: nothing started")
        return 0
    if args.dashboard_host not in LOCAL_HOSTS:
        print(f"WARNING: the Ray dashboard will listen on {args.dashboard_host}. It has no authentication, and "
              f"its jobs API runs arbitrary code for anyone who can reach it (CVE-2023-48022). "
              f"Expose it only on a trusted network, or tunnel to 127.0.0.1 with ssh -L.", file=sys.stderr)
    return _run(plan, args, user_errors)


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it is inside it (what a user types)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def viewer_commands(run_dir: Path, storage: Optional[str] = None) -> list[str]:
    """The commands that open a run in TensorBoard and in optuna-dashboard."""
    from search.record import journal_path

    study = storage or f"sqlite:///{_shown(run_dir / 'optuna.db')}"
    journal = journal_path(study)
    return [f"TensorBoard: tensorboard --logdir {_shown(run_dir)}",
            f"Optuna dashboard: optuna-dashboard {_shown(journal) if journal is not None else study}"]


def _run(plan, args: argparse.Namespace, user_errors: tuple[type[BaseException], ...]) -> int:
    from search.runner import check_data, prepare_data

    try:
        data = prepare_data(plan)
        check_data(plan, data)
    except user_errors as err:
        return _fail(str(err))
    from search.run_lock import hold_run_folder

    # Before Ray starts: a folder another live search is using is refused at once (exit 2).
    try:
        with hold_run_folder(plan.run_dir):
            return _search(plan, data, args, user_errors)
    except user_errors as err:
        return _fail(str(err))


def _search(plan, data, args: argparse.Namespace, user_errors: tuple[type[BaseException], ...]) -> int:
    from search.runner import RAY_LOG, connect, run_search

    if not plan.resume:  # a resumed search keeps the precision its study recorded (search.precision)
        from search.precision import decide, planned

        # Before Ray starts: its processes starting up would disturb the timings.
        if planned(plan).source == "pending":
            print("precision: auto: timing fp32 and bf16 training steps of the base config here (once, then cached)",
                  flush=True)
        plan.precision = decide(plan)
    print(plan.describe())
    for notice in plan.space.notices:
        print(f"W&B sweep file: {notice}")
    print(viewer_commands(plan.run_dir, plan.storage)[0])
    log_path = None if args.verbose else plan.run_dir / RAY_LOG
    if log_path is not None:
        print(f"Ray's own output: {_shown(log_path)} (--verbose shows it here)")
    sys.stdout.flush()
    import ray

    from search.console import ray_output_to
    from search.runner import make_console

    error: Optional[BaseException] = None
    with ray_output_to(log_path) as out:
        try:
            url = connect(args.address, args.dashboard_host)
            print(f"Ray dashboard: {url}" if url else "Ray dashboard: not running (install ray[default])",
                  file=out, flush=True)
            # --verbose: Ray's tables share the screen, so the progress line is printed, not redrawn.
            console = make_console(plan, stream=out, live=False if args.verbose else None)
            outcome = run_search(plan, data, console=console)
        except user_errors as err:
            error = err
        finally:
            if ray.is_initialized():
                ray.shutdown()
    if error is not None:
        return _fail(str(error))
    print()
    if outcome.best_trial is None:
        print(f"no trial produced a finite {plan.space.metric}; see {outcome.trials_csv}")
        failed = outcome.status_counts.get("failed", 0)
        if failed:
            print(f"{failed} trial(s) failed: each one's cause is in "
                  f"{_shown(plan.run_dir / 'trials')}/<trial id>/error.txt", file=sys.stderr)
    else:
        print(f"best trial: {outcome.best_trial} with {plan.space.metric} = {outcome.best_value:.4f}")
        print(f"best config: {outcome.best_yaml}")
    counts = ", ".join(f"{n} {s}" for s, n in outcome.status_counts.items() if n)
    print(f"trials: {counts}")
    reeval = ", ".join(f"{n} {s}" for s, n in outcome.reeval_counts.items() if n)
    if reeval:
        print(f"re-evaluation runs: {reeval}")
    if outcome.comparison.get("reason") and len(outcome.comparison.get("strata", {})) > 1:
        print(f"verdict: {outcome.comparison['reason']}")
    print(f"trials.csv: {outcome.trials_csv}")
    print(f"summary: {outcome.summary_json}")
    if not args.no_report:
        report = _write_report(plan.run_dir)
        print(f"report: {report}" if report else "report: not written (the reports package is not available)")
    for line in viewer_commands(plan.run_dir, plan.storage):
        print(line)
    if log_path is not None:
        print(f"Ray's own output: {_shown(log_path)}")
    return 0 if outcome.best_trial is not None else NO_ANSWER


if __name__ == "__main__":
    sys.exit(main())
