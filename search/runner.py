"""Build and run the Ray Tune search: Optuna (define-by-run) + ASHA + the CVAE trainable.

Order matters: everything a user can get wrong (space, flags, data folder,
existing run folder) is checked before Ray starts; the cluster's resources are
checked right after ray.init and before any trial is scheduled.
"""
from __future__ import annotations

import logging
import math
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional

from cvae.data import DataError
from search.cluster import ResourceError, alive_nodes, check_cluster, check_request, cluster_concurrency
from search.errors import SpaceError
from search.run_lock import LOCK_NAME, hold_run_folder
from search.sampler import make_sampler
from search.space import SearchSpace, load_space

logger = logging.getLogger(__name__)

NUM_CHECKPOINTS_KEPT = 2
RAY_LOG = "ray.log"  # Ray's own console output (search.console), in the run folder
# What a run folder holds besides search state: Ray's log and the driver lock (search.run_lock).
_NOT_SEARCH_STATE = (RAY_LOG, LOCK_NAME)
# ASHA and the Optuna bridge count budget in the trainer's epochs: equal to
# Ray's training_iteration for a fresh trial, and still right after a trial
# resumes from a checkpoint.
TIME_ATTR = "epoch"


class RunError(ValueError):
    """A user-caused problem with the run folder or the options (exit code 2)."""


@dataclass
class SearchPlan:
    """The resolved search: the space plus command-line overrides."""
    space: SearchSpace
    name: str
    storage_path: Path  # absolute
    data_root: Path
    num_samples: int
    max_concurrent: Optional[int]  # None until run_search sizes it to the cluster
    cpu: float
    gpu: float
    resume: bool = False
    force_resume: bool = False  # resume even with ray/optuna versions resume was not tested with

    @property
    def run_dir(self) -> Path:
        return self.storage_path / self.name

    @property
    def num_epoch(self) -> int:
        return self.space.num_epoch

    @property
    def num_trials(self) -> int:
        """Every Ray trial the experiment may create: the search trials, then the re-runs."""
        return self.num_samples + self.space.max_reeval_trials

    def describe(self) -> str:
        """The plan after overrides, for --dry-run and the start banner."""
        space = self.space
        asha = space.asha
        stopping = ("none" if asha is None else
                    f"ASHA on {TIME_ATTR} per stratum, grace {asha.grace_period}, reduction "
                    f"{asha.reduction_factor:g}, max_t {asha.max_t}, brackets {asha.brackets}, "
                    "never before a trial's KL warm-up ends")
        reeval = (f"{space.reeval_seeds} seeds x best of each of {len(space.strata())} strata "
                  f"(up to {space.max_reeval_trials} runs after the search)" if space.reeval_seeds else "off")
        synthetic = (f" (missing: generated from synthetic preset '{space.synthetic}')"
                     if space.synthetic and not self.data_root.exists() else "")
        return "\n".join([
            "plan:",
            f"  run folder:  {self.run_dir}{' (resume)' if self.resume else ''}",
            f"  data:        {self.data_root}{synthetic}",
            f"  trials:      {self.num_samples}, "
            f"{'as many at a time as the cluster allows' if self.max_concurrent is None else self.max_concurrent}"
            f"{'' if self.max_concurrent is None else ' at a time'}, "
            f"{self.cpu:g} CPU + {self.gpu:g} GPU each, strata {space.strata_mode}",
            f"  re-eval:     {reeval}",
            f"  sampler:     {space.sampler.type} (seed {space.sampler.seed}), study {self.run_dir / 'optuna.db'}",
            f"  stopping:    {stopping}",
            f"  failures:    retried up to {space.max_failures} times; checkpoint every "
            f"{space.checkpoint_every} epoch(s), last {NUM_CHECKPOINTS_KEPT} kept",
        ])


def make_plan(space_path: str | Path, *, data: Optional[str] = None, name: Optional[str] = None,
              storage_path: str | Path = "runs", num_samples: Optional[int] = None,
              max_concurrent: Optional[int] = None, cpus_per_trial: Optional[float] = None,
              gpus_per_trial: Optional[float] = None, resume: bool = False,
              force_resume: bool = False) -> SearchPlan:
    """Load and validate the space, apply overrides, check the run folder. Starts nothing."""
    space = load_space(space_path, data=data)
    plan = SearchPlan(
        space=space, name=name or space.name, storage_path=Path(storage_path).resolve(),
        data_root=Path(data) if data else Path(space.data_root),
        num_samples=space.num_samples if num_samples is None else num_samples,
        max_concurrent=space.max_concurrent if max_concurrent is None else max_concurrent,
        cpu=space.cpu if cpus_per_trial is None else cpus_per_trial,
        gpu=space.gpu if gpus_per_trial is None else gpus_per_trial,
        resume=resume or force_resume, force_resume=force_resume)
    _check_plan(plan)
    return plan


def _only_startup_leftovers(run_dir: Path) -> bool:
    """The folder holds nothing but Ray's log, or what a search killed during start-up left."""
    from search.resume import nothing_saved

    return all(p.name in _NOT_SEARCH_STATE for p in run_dir.iterdir()) or nothing_saved(run_dir)


def _check_plan(plan: SearchPlan) -> None:
    if plan.num_samples < 1:
        raise RunError(f"--num-samples is {plan.num_samples}, but must be >= 1")
    if plan.max_concurrent is not None and plan.max_concurrent < 1:
        raise RunError(f"--max-concurrent is {plan.max_concurrent}, but must be >= 1")
    space = plan.space
    if plan.num_samples != space.num_samples:
        if space.sampler.type == "grid":
            raise RunError(f"--num-samples is {plan.num_samples}, but sampler grid of {space.path} runs "
                           f"every combination once: {space.num_samples} trials")
        n = len(space.strata())
        if space.strata_mode == "balanced" and plan.num_samples < 2 * n:
            raise RunError(f"--num-samples is {plan.num_samples}, but must be >= {2 * n} so that each of the "
                           f"{n} strata of {space.path} gets at least 2 trials")
    if "/" in plan.name or plan.name in ("", ".", ".."):
        raise RunError(f"--name is {plan.name!r}, but must be a plain folder name")
    check_request(plan.cpu, plan.gpu, source="--cpus-per-trial/--gpus-per-trial or trials.resources")
    run_dir = plan.run_dir
    if plan.resume:
        from search.resume import check_experiment_dir, check_versions, nothing_saved

        # ResumeError (a ValueError, exit 2) naming what is wrong; before Ray starts and
        # before anything in the folder changes.
        warning = check_versions(force=plan.force_resume)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        if nothing_saved(run_dir):
            # Killed during start-up, before Tune saved anything or a trial reported:
            # nothing to continue, so the search starts afresh (run_search sets the leftovers aside).
            print(f"resume: {run_dir} holds no saved search (it was stopped during start-up): "
                  "starting the search afresh", flush=True)
            plan.resume = False
        else:
            check_experiment_dir(run_dir)
    elif run_dir.exists() and not _only_startup_leftovers(run_dir):
        raise RunError(f"{run_dir}: already holds a search; pass --resume to continue it "
                       f"or --name NEW to start another")
    if plan.data_root.exists() and not plan.data_root.is_dir():
        raise DataError(f"{plan.data_root}: the data path is a file, but must be a dataset folder (the Lab4 layout)")
    if not plan.data_root.exists() and not plan.space.synthetic:
        raise DataError(f"{plan.data_root}: data folder does not exist (set data.synthetic in "
                        f"{plan.space.path} to generate one, or pass --data DIR)")


# --- data ---------------------------------------------------------------------
def prepare_data(plan: SearchPlan, progress: bool = True) -> Any:
    """Generate the synthetic dataset if asked and missing, then decode it once (the space's model family does both)."""
    family = plan.space.family
    if not plan.data_root.exists():
        print(f"data: {plan.data_root} is missing; generating synthetic preset '{plan.space.synthetic}'",
              flush=True)
        family.generate_synthetic(plan.data_root, preset=plan.space.synthetic, seed=0, progress=progress)
    base = plan.space.train_config({})
    return family.load_data(plan.data_root, base, progress=progress)


def check_data(plan: SearchPlan, data: Any) -> None:
    """Refuse, before Ray starts, fixed settings the dataset cannot satisfy.

    Otherwise every trial would fail the same way inside Ray, after retries.
    """
    base = plan.space.train_config({})
    plan.space.family.check_data(base, data, where=f"{plan.space.path} (data {plan.data_root})")


def baseline_psnr(data: Any, cfg: Any, family: Any = None) -> Optional[float]:
    """The family's copy baseline on the validation data the trainer uses (lab4-2024, the
    default: copy the first frame; bair-2023: copy the last given frame)."""
    from cvae.families import get_family

    value = (family or get_family()).baseline_psnr(data, cfg)
    return None if value is None or not math.isfinite(value) else float(value)


# --- Ray ---------------------------------------------------------------------------
def connect(address: Optional[str], dashboard_host: str = "127.0.0.1") -> Optional[str]:
    """Start (or join) Ray and return the dashboard URL.

    A fresh local Ray binds its dashboard to `dashboard_host`; a joined cluster
    keeps the dashboard its head node was started with.
    """
    import ray

    if ray.is_initialized():
        url = ray._private.worker.get_dashboard_url()
        return f"http://{url}" if url else None
    kwargs: dict[str, Any] = {"log_to_driver": True}
    if address:
        kwargs["address"] = address
        # Workers on other machines need the project's code: ship the packages.
        root = Path(__file__).resolve().parent.parent
        kwargs["runtime_env"] = {"py_modules": [str(root / "cvae"), str(root / "search")]}
    else:
        kwargs.update(include_dashboard=True, dashboard_host=dashboard_host)
    try:
        context = ray.init(**kwargs)
    except Exception as err:  # noqa: BLE001 - Ray raises a bare Exception when its dashboard does not start
        if address or "dashboard" not in str(err).lower():
            raise
        # Measured on a loaded 2-core machine: the dashboard's modules missed Ray's
        # 30 s start timeout and ray.init failed. The search does not need it.
        logger.warning("the Ray dashboard did not start (%s); running the search without it",
                       str(err).strip().splitlines()[0][:200])
        print("WARNING: the Ray dashboard did not start; running the search without it", file=sys.stderr, flush=True)
        ray.shutdown()
        kwargs.update(include_dashboard=False)
        kwargs.pop("dashboard_host", None)
        context = ray.init(**kwargs)
    url = getattr(context, "dashboard_url", None)
    return f"http://{url}" if url and not url.startswith("http") else url


def make_searcher(plan: SearchPlan):
    import optuna
    from ray.tune.search import ConcurrencyLimiter

    from search.optuna_bridge import PruningOptunaSearch

    plan.run_dir.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{plan.run_dir / 'optuna.db'}")
    searcher = PruningOptunaSearch(
        plan.space.define_by_run, metric=plan.space.metric, mode=plan.space.mode, max_t=plan.num_epoch,
        sampler=make_sampler(plan.space, plan.max_concurrent), study_name=plan.name, storage=storage,
        design=make_design(plan))
    return ConcurrencyLimiter(searcher, max_concurrent=plan.max_concurrent)


def make_design(plan: SearchPlan):
    from search.optuna_bridge import StudyDesign

    space = plan.space
    return StudyDesign(
        strata={s.key: s.values for s in space.strata()}, scientific=tuple(space.scientific_parameters()),
        balanced=space.strata_mode == "balanced", num_search=plan.num_samples,
        reeval_seed_values=tuple(space.reeval_seed(i) for i in range(1, space.reeval_seeds + 1)))


def make_scheduler(plan: SearchPlan):
    import functools

    from ray.tune.schedulers import FIFOScheduler

    from search.scheduler import ScheduleAwareASHA, earliest_stop_epoch

    asha = plan.space.asha
    if asha is None:
        return FIFOScheduler()
    # A partial of a module-level function: Tune pickles the scheduler with the experiment.
    # `fixed`: the base config (the fixed values over the family's defaults), where a trial's
    # KL settings come from when it did not sample them.
    earliest = functools.partial(earliest_stop_epoch, fixed=plan.space.train_config({}).to_dict(),
                                 grace_period=asha.grace_period, num_epoch=plan.num_epoch)
    return ScheduleAwareASHA(time_attr=TIME_ATTR, metric=plan.space.metric, mode=plan.space.mode,
                             max_t=plan.num_epoch, grace_period=asha.grace_period,
                             reduction_factor=asha.reduction_factor, brackets=asha.brackets,
                             earliest_stop=earliest)


def make_trainable(plan: SearchPlan, data: Any):
    from ray import tune

    from search.trainable import train_trial

    # with_parameters puts the arrays in the object store once; every trial on
    # a node maps that one copy.
    wrapped = tune.with_parameters(train_trial, data=plan.space.family.share_data(data), space=plan.space)
    return tune.with_resources(wrapped, {"cpu": plan.cpu, "gpu": plan.gpu})


def make_recorder(plan: SearchPlan, data: Any):
    from search.results import SearchRecorder

    base = plan.space.train_config({})
    return SearchRecorder(
        plan.run_dir, name=plan.name, param_names=plan.space.parameter_names(), metric=plan.space.metric,
        mode=plan.space.mode, num_epoch=plan.num_epoch, num_samples=plan.num_samples,
        fixed_config=base.to_dict(), baseline_psnr=baseline_psnr(data, base, plan.space.family), data_root=str(plan.data_root),
        strata=[s.key for s in plan.space.strata()], scientific=plan.space.scientific_parameters())


def make_console(plan: SearchPlan, stream=None, live: Optional[bool] = None):
    """The one-line-per-trial console and its progress line (search.console)."""
    from search.console import ConsoleCallback

    return ConsoleCallback(metric=plan.space.metric, mode=plan.space.mode, num_epoch=plan.num_epoch,
                           num_search=plan.num_samples, max_reeval=plan.space.max_reeval_trials,
                           param_names=tuple(p.name for p in plan.space.parameters if p.kind != "constant"),
                           stream=stream, live=live)


def build_tuner(plan: SearchPlan, data: Any, console=None):
    from ray import tune

    from search.results import ResultsCallback

    trainable = make_trainable(plan, data)
    if plan.resume:
        from search.resume import reconcile_for_resume

        # Make Tune's saved state, the searcher pickle and optuna.db agree (a SIGKILL
        # leaves the study ahead of Tune's last save); re-points the searcher at this
        # folder's optuna.db, so a moved run folder resumes too.
        resume_plan = reconcile_for_resume(plan.run_dir, study_name=plan.name,
                                           storage_url=f"sqlite:///{plan.run_dir / 'optuna.db'}",
                                           force=plan.force_resume)
        if resume_plan.changed:
            # On the console, not in ray.log: what resume changed is the user's to see.
            line = f"resume: reconciled {plan.run_dir}: {resume_plan}"
            if console is not None:
                console.say(line)
            else:
                print(line, flush=True)
        tuner = tune.Tuner.restore(str(plan.run_dir), trainable=trainable,
                                   resume_unfinished=True, resume_errored=True)
        _fresh_callbacks(tuner, plan, data, console)
        return tuner
    recorder = make_recorder(plan, data)
    run_config = tune.RunConfig(
        name=plan.name, storage_path=str(plan.storage_path),
        callbacks=[ResultsCallback(recorder), *([console] if console is not None else [])],
        checkpoint_config=tune.CheckpointConfig(num_to_keep=NUM_CHECKPOINTS_KEPT),
        failure_config=tune.FailureConfig(max_failures=plan.space.max_failures),
    )
    # Reused actors: a fresh worker per trial re-imports torch and Ray (bench/overhead.py
    # measured ~10 s of worker start per trial on 2 cores). train_trial keeps no state
    # between calls (model, optimizer, threads and seeds are set per trial), so reuse is safe.
    # num_samples counts Ray trials: the search's, then the re-evaluation runs the
    # searcher adds once the search has ended (it says FINISHED after the last).
    tune_config = tune.TuneConfig(search_alg=make_searcher(plan), scheduler=make_scheduler(plan),
                                  num_samples=plan.num_trials, reuse_actors=True)
    return tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)


def _fresh_callbacks(tuner, plan: SearchPlan, data: Any, console=None) -> None:
    """Replace the unpickled ResultsCallback by one writing to this run folder.

    The pickled callback holds the absolute run_dir of the first session: after
    the folder was moved it would write trials.csv to the old place (or fail).
    A fresh recorder reloads trials.csv/summary.json in setup(), so nothing is lost.
    """
    from search.console import ConsoleCallback
    from search.results import ResultsCallback

    from search.resume import restored_run_config

    run_config = restored_run_config(tuner)  # Tuner.restore accepts no new RunConfig
    others = [cb for cb in (run_config.callbacks or []) if not isinstance(cb, (ResultsCallback, ConsoleCallback))]
    run_config.callbacks = [*others, ResultsCallback(make_recorder(plan, data)),
                            *([console] if console is not None else [])]


@dataclass
class SearchOutcome:
    run_dir: Path
    best_trial: Optional[str]
    best_value: Optional[float]
    best_yaml: Optional[Path]
    trials_csv: Path
    summary_json: Path
    status_counts: dict[str, int] = field(default_factory=dict)         # search trials
    reeval_counts: dict[str, int] = field(default_factory=dict)         # re-evaluation runs
    comparison: dict[str, Any] = field(default_factory=dict)            # summary.json's comparison block


def run_search(plan: SearchPlan, data: Any, *, check_resources: bool = True, console=None) -> SearchOutcome:
    """Run (or resume) the search in an initialised Ray and write the result files.

    `console`: a search.console.ConsoleCallback (run_search.py's one-line-per-trial output), or None."""
    if check_resources:
        check_cluster(plan.cpu, plan.gpu)
    if plan.max_concurrent is None:
        plan.max_concurrent = cluster_concurrency(plan.cpu, plan.gpu, alive_nodes())
    # From here on the folder changes: RunFolderBusy (exit 2, nothing changed) while another
    # driver runs a search in it. run_search.py holds the lock already; taking it again is free.
    with hold_run_folder(plan.run_dir):
        return _search_in_held_folder(plan, data, console)


def _search_in_held_folder(plan: SearchPlan, data: Any, console) -> SearchOutcome:
    if not plan.resume:
        from search.resume import set_aside_unsaved

        # A start killed before Tune saved anything: its leftovers (space.yaml, an optuna.db
        # with no finished trial) go to .resume-backup/, and the search starts afresh here.
        if any(p.name not in _NOT_SEARCH_STATE for p in plan.run_dir.iterdir()):
            set_aside_unsaved(plan.run_dir, keep=(RAY_LOG,))
        shutil.copyfile(plan.space.path, plan.run_dir / "space.yaml")
    tuner = build_tuner(plan, data, console)
    tuner.fit()
    # The callback flushed everything to disk; reading it back works the same
    # for a fresh run and for a resumed one (whose callback was unpickled).
    recorder = make_recorder(plan, data)
    recorder.load_existing()
    recorder.write(final=True)
    best = recorder.best()
    best_yaml = None
    if best is not None:
        record = recorder.trials[best[0]]
        cfg = plan.space.train_config(record.params)
        # What the trial's numbers depend on besides its configuration (threads,
        # device, resolved precision), so `cvae.train --config best.yaml` reproduces it.
        best_yaml = recorder.write_best_yaml({"model": plan.space.model, **cfg.to_dict(), **record.execution})
    return SearchOutcome(run_dir=plan.run_dir, best_trial=best[0] if best else None,
                         best_value=best[2] if best else None, best_yaml=best_yaml,
                         trials_csv=plan.run_dir / "trials.csv", summary_json=plan.run_dir / "summary.json",
                         status_counts=recorder.status_counts(), reeval_counts=recorder.status_counts("reeval"),
                         comparison=recorder.comparison())
