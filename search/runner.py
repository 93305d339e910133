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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from cvae.core.images import DataError
from search.cluster import alive_nodes, check_cluster, check_request, cluster_concurrency
from search.run_lock import LOCK_NAME, hold_run_folder
from search.sampler import make_sampler
from search.space import SearchSpace, load_space
from search.trial_files import NUM_CHECKPOINTS_KEPT

logger = logging.getLogger(__name__)

RAY_LOG = "ray.log"  # Ray's own console output (search.console), in the run folder
TUNE_DIR = "tune"  # Ray Tune's experiment folders, one per session (scratch, never read back)
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
    storage: Optional[str] = None  # an Optuna storage URL; None: sqlite:///<run folder>/optuna.db
    # `precision: auto` decided for the trials (search.precision; a PrecisionDecision), None until then
    precision: Optional[Any] = None

    @property
    def storage_url(self) -> str:
        from search.record import default_storage_url

        return self.storage or default_storage_url(self.run_dir)

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
                    "a trial judged only where its KL term has full weight (Monotonic after its ramp, "
                    "Cyclical at the end of a cycle)")
        reeval = (f"{space.reeval_seeds} seeds x best of each of {len(space.strata())} strata "
                  f"(up to {space.max_reeval_trials} runs after the search)" if space.reeval_seeds else "off")
        if space.reeval_racing:
            reeval = (f"racing: {space.reeval_seeds} seeds x best of each of {len(space.strata())} strata, then "
                      f"more for the strata in contention (up to {space.max_reeval_trials} runs after the search)")
        synthetic = (f" (missing: generated from synthetic preset '{space.synthetic}')"
                     if space.synthetic and not self.data_root.exists() else "")
        from search.precision import planned

        precision = (self.precision or planned(self)).describe()  # a dry run never probes
        return "\n".join([
            "plan:",
            f"  run folder:  {self.run_dir}{' (resume)' if self.resume else ''}",
            f"  data:        {self.data_root}{synthetic}",
            f"  trials:      {self.num_samples}, "
            f"{'as many at a time as the cluster allows' if self.max_concurrent is None else self.max_concurrent}"
            f"{'' if self.max_concurrent is None else ' at a time'}, "
            f"{self.cpu:g} CPU + {self.gpu:g} GPU each, strata {space.strata_mode}",
            f"  re-eval:     {reeval}",
            f"  sampler:     {space.sampler.type} (seed {space.sampler.seed}), study '{self.name}' in {self.storage_url}",
            f"  stopping:    {stopping}",
            f"  failures:    retried up to {space.max_failures} times; checkpoint every "
            f"{space.checkpoint_every} epoch(s), last {NUM_CHECKPOINTS_KEPT} kept",
            f"  precision:   {precision}",
        ])


def make_plan(space_path: str | Path, *, data: Optional[str] = None, name: Optional[str] = None,
              storage_path: str | Path = "runs", num_samples: Optional[int] = None,
              max_concurrent: Optional[int] = None, cpus_per_trial: Optional[float] = None,
              gpus_per_trial: Optional[float] = None, resume: bool = False,
              storage: Optional[str] = None) -> SearchPlan:
    """Load and validate the space, apply overrides, check the run folder. Starts nothing."""
    space = load_space(space_path, data=data, name=name)
    plan = SearchPlan(
        space=space, name=name or space.name, storage_path=Path(storage_path).resolve(),
        data_root=Path(data) if data else Path(space.data_root),
        num_samples=space.num_samples if num_samples is None else num_samples,
        max_concurrent=space.max_concurrent if max_concurrent is None else max_concurrent,
        cpu=space.cpu if cpus_per_trial is None else cpus_per_trial,
        gpu=space.gpu if gpus_per_trial is None else gpus_per_trial,
        resume=resume, storage=storage)
    _check_plan(plan)
    return plan


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
    from search.record import storage_has_study
    from search.resume import AFRESH, STARTUP_FILES, resume_mode

    # ResumeError / StorageError (ValueErrors, exit 2) naming what is wrong, before Ray
    # starts and before anything in the folder changes.
    if plan.resume:
        if resume_mode(run_dir, plan.storage_url, plan.name) == AFRESH:
            # Killed during start-up, before any trial was recorded: nothing to continue,
            # so the search starts afresh (run_search sets the leftovers aside).
            print(f"resume: {run_dir} holds no recorded trial (it was stopped during start-up): "
                  "starting the search afresh", flush=True)
            plan.resume = False
    elif storage_has_study(plan.storage_url, plan.name) or (
            run_dir.is_dir() and not {p.name for p in run_dir.iterdir()} <= set(STARTUP_FILES)):
        raise RunError(f"{run_dir}: already holds a search (study '{plan.name}' in {plan.storage_url}); "
                       f"pass --resume to continue it or --name NEW to start another")
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
        from search._compat import dashboard_url

        url = dashboard_url()
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


def make_record(plan: SearchPlan):
    """The study: the search's one record (search.record)."""
    from search.record import StudyRecord

    plan.run_dir.mkdir(parents=True, exist_ok=True)
    return StudyRecord(plan.storage_url, plan.name, mode=plan.space.mode,
                       sampler=make_sampler(plan.space, plan.max_concurrent or 1))


def make_searcher(plan: SearchPlan, record):
    from search.searcher import StudySearcher

    return StudySearcher(plan.space.define_by_run, record, metric=plan.space.metric, mode=plan.space.mode,
                         max_t=plan.num_epoch, design=make_design(plan))


def make_design(plan: SearchPlan):
    from search.searcher import StudyDesign

    space = plan.space
    return StudyDesign(
        strata={s.key: s.values for s in space.strata()}, scientific=tuple(space.scientific_parameters()),
        balanced=space.strata_mode == "balanced", num_search=plan.num_samples,
        reeval_seed_values=tuple(space.reeval_seed(i) for i in range(1, space.reeval_seed_count + 1)),
        racing=space.race_budget, verdict=verdict_settings(space))


def verdict_settings(space):
    """What the verdict (and racing's rounds) are judged by."""
    from search.comparison import Settings

    return Settings(equivalence=space.reeval_equivalence)


def make_scheduler(plan: SearchPlan, record=None):
    """ASHA per stratum (or FIFO without early stopping); with a `record`, wrapped so every
    result is committed to the study first, and ASHA's rungs rebuilt from the study."""
    import functools

    from ray.tune.schedulers import FIFOScheduler

    from search.scheduler import ScheduleAwareASHA, earliest_stop_epoch, judge_epochs

    asha = plan.space.asha
    if asha is None:
        inner = FIFOScheduler()
    else:
        # `fixed`: the base config (the fixed values over the family's defaults), where a trial's
        # KL settings come from when it did not sample them.
        kl = dict(fixed=plan.space.train_config({}).to_dict(), grace_period=asha.grace_period,
                  num_epoch=plan.num_epoch)
        inner = ScheduleAwareASHA(time_attr=TIME_ATTR, metric=plan.space.metric, mode=plan.space.mode,
                                  max_t=plan.num_epoch, grace_period=asha.grace_period,
                                  reduction_factor=asha.reduction_factor, brackets=asha.brackets,
                                  earliest_stop=functools.partial(earliest_stop_epoch, **kl),
                                  judge_at=functools.partial(judge_epochs, **kl),
                                  # compared with peers at the same epoch: in the replays never more than a point
                                  # worse on a best-curve stop share, often better (docs/benchmarks.md)
                                  same_epoch=True)
    if record is None:
        return inner
    from search.record import config_of, counted, key_of, phase_of, stratum_of
    from search.record_scheduler import RecordingScheduler
    from search.strata import PHASE_KEY, STRATUM_KEY

    if asha is not None:
        inner.rebuild((key_of(t), {**config_of(t), PHASE_KEY: phase_of(t), STRATUM_KEY: stratum_of(t)},
                       dict(t.intermediate_values)) for t in record.trials() if counted(t))
    return RecordingScheduler(inner, record, metric=plan.space.metric, num_epoch=plan.num_epoch)


def make_trainable(plan: SearchPlan, data: Any):
    from ray import tune

    from search.trainable import train_trial

    # with_parameters puts the arrays in the object store once; every trial on
    # a node maps that one copy.
    # precision: the driver's decision for `auto` (search.precision), so trials do not probe again
    decided = plan.precision.precision if plan.precision is not None else None
    wrapped = tune.with_parameters(train_trial, data=plan.space.family.share_data(data), space=plan.space,
                                   run_dir=str(plan.run_dir), precision=decided)
    return tune.with_resources(wrapped, {"cpu": plan.cpu, "gpu": plan.gpu})


def make_recorder(plan: SearchPlan, data: Any):
    from search.results import SearchRecorder

    base = plan.space.train_config({})
    return SearchRecorder(
        plan.run_dir, name=plan.name, param_names=plan.space.parameter_names(), metric=plan.space.metric,
        mode=plan.space.mode, num_epoch=plan.num_epoch, num_samples=plan.num_samples,
        fixed_config=base.to_dict(), baseline_psnr=baseline_psnr(data, base, plan.space.family), data_root=str(plan.data_root),
        strata=[s.key for s in plan.space.strata()], scientific=plan.space.scientific_parameters(),
        verdict=verdict_settings(plan.space))


def make_console(plan: SearchPlan, stream=None, live: Optional[bool] = None):
    """The one-line-per-trial console and its progress line (search.console)."""
    from search.console import ConsoleCallback

    return ConsoleCallback(metric=plan.space.metric, mode=plan.space.mode, num_epoch=plan.num_epoch,
                           num_search=plan.num_samples, max_reeval=plan.space.max_reeval_trials,
                           param_names=tuple(p.name for p in plan.space.parameters if p.kind != "constant"),
                           stream=stream, live=live)


def build_tuner(plan: SearchPlan, data: Any, record, console=None):
    """A fresh Tuner over the study: for a new search and for every --resume alike."""
    from ray import tune

    from search.results import ResultsCallback

    trainable = make_trainable(plan, data)
    from search.resume import backfill_interrupted

    starts, ended = backfill_interrupted(record, plan.run_dir, plan.space.metric, plan.num_epoch)
    lines = [f"resume: {key} ended: {status}" for key, status in ended.items()]
    if starts:
        lines.append(f"resume: continuing {len(starts)} interrupted trial(s): " + ", ".join(
            f"{key} from epoch {epoch}" if epoch else f"{key} from scratch" for key, epoch in starts.items()))
    for line in lines:
        console.say(line) if console is not None else print(line, flush=True)
    searcher = make_searcher(plan, record)
    # Tune's own folder is this attempt's scratch (its logs, result.json): never read back.
    tune_root = plan.run_dir / TUNE_DIR
    session = f"session-{len(list(tune_root.glob('session-*'))) + 1}" if tune_root.is_dir() else "session-1"
    run_config = tune.RunConfig(
        name=session, storage_path=str(tune_root),
        callbacks=[ResultsCallback(make_recorder(plan, data), record.trials),
                   *([console] if console is not None else [])],
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        failure_config=tune.FailureConfig(max_failures=plan.space.max_failures),
    )
    # Reused actors: a fresh worker per trial re-imports torch and Ray (bench/overhead.py
    # measured ~10 s of worker start per trial on 2 cores). train_trial keeps no state
    # between calls (model, optimizer, threads and seeds are set per trial), so reuse is safe.
    # num_samples bounds the Ray trials of this session (each runs one study trial: an
    # interrupted one, or a new one); the searcher says FINISHED after the last re-run.
    tune_config = tune.TuneConfig(search_alg=searcher, scheduler=make_scheduler(plan, record),
                                  num_samples=plan.num_trials, max_concurrent_trials=plan.max_concurrent,
                                  reuse_actors=True)
    return tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)


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
    from search.resume import backup_state, set_aside_unsaved

    if plan.resume:
        backup_state(plan.run_dir, plan.storage_url)
    else:
        # A start killed before any trial was recorded: its leftovers (space.yaml, an empty
        # optuna.db) go to .resume-backup/, and the search starts afresh here.
        if any(p.name not in _NOT_SEARCH_STATE for p in plan.run_dir.iterdir()):
            set_aside_unsaved(plan.run_dir, keep=(RAY_LOG,))
        shutil.copyfile(plan.space.path, plan.run_dir / "space.yaml")
    record = make_record(plan)
    from search.precision import settle

    decision, changed = settle(plan, record)  # probes here only when nobody decided before Ray started
    if changed:
        line = f"precision: {decision.describe()}"
        console.say(line) if console is not None else print(line, flush=True)
    recorder = make_recorder(plan, data)
    # The views first: a resumed folder's trials.csv and summary.json are rebuilt from the record.
    recorder.load_record(record.trials())
    recorder.write()
    tuner = build_tuner(plan, data, record, console)
    tuner.fit()
    recorder.load_record(record.trials())
    recorder.write(final=True)
    best = recorder.best()
    best_yaml = None
    if best is not None:
        trial = recorder.trials[best[0]]
        cfg = plan.space.train_config(trial.params)
        # What the trial's numbers depend on besides its configuration (threads,
        # device, resolved precision), so `cvae.train --config best.yaml` reproduces it.
        best_yaml = recorder.write_best_yaml({"model": plan.space.model, **cfg.to_dict(), **trial.execution})
    return SearchOutcome(run_dir=plan.run_dir, best_trial=best[0] if best else None,
                         best_value=best[2] if best else None, best_yaml=best_yaml,
                         trials_csv=plan.run_dir / "trials.csv", summary_json=plan.run_dir / "summary.json",
                         status_counts=recorder.status_counts(), reeval_counts=recorder.status_counts("reeval"),
                         comparison=recorder.comparison())
