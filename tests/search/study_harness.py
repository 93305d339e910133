"""The driver's side of a search without Ray running: the real StudySearcher and
RecordingScheduler over a real SQLite study, fed synthetic results in Tune's order
(the scheduler first, as TuneController._process_trial_result calls it)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import optuna
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from search.record import StudyRecord
from search.record_scheduler import RecordingScheduler
from search.searcher import StudySearcher


class Harness:
    """suggest / result / complete / error, as Tune would call them for Ray trial ids."""

    def __init__(self, searcher: StudySearcher, scheduler: RecordingScheduler, record: StudyRecord) -> None:
        self.searcher, self.scheduler, self.record = searcher, scheduler, record
        self.trials: dict[str, Trial] = {}

    @property
    def study(self) -> optuna.Study:
        return self.record.study

    def suggest(self, ray_id: str) -> Any:
        config = self.searcher.suggest(ray_id)
        if isinstance(config, dict):
            trial = Trial("__fake", config=config, trial_id=ray_id, stub=True)
            self.trials[ray_id] = trial
            self.scheduler.on_trial_add(None, trial)
        return config

    def result(self, ray_id: str, result: dict) -> str:
        return self.scheduler.on_trial_result(None, self.trials[ray_id], result)

    def complete(self, ray_id: str, result: Optional[dict] = None) -> None:
        self.scheduler.on_trial_complete(None, self.trials[ray_id], result or {})

    def error(self, ray_id: str, final: bool = True) -> None:
        """Tune's order: the scheduler hears every error; the searcher only the final one."""
        self.scheduler.on_trial_error(None, self.trials[ray_id])
        if final:
            self.searcher.on_trial_complete(ray_id, None, error=True)

    def run(self, ray_id: str, values: list[float], *, diverged_at: Optional[int] = None) -> str:
        """Results until the scheduler says STOP or the values end; then the completion."""
        if ray_id not in self.trials:
            assert isinstance(self.suggest(ray_id), dict)
        decision = TrialScheduler.CONTINUE
        last: dict = {}
        for epoch, value in enumerate(values, start=1):
            last = {"epoch": epoch, "training_iteration": epoch, "val_psnr": value,
                    "diverged": epoch == diverged_at}
            decision = self.result(ray_id, last)
            if decision == TrialScheduler.STOP or epoch == diverged_at:
                break
        self.complete(ray_id, last)
        return decision


def harness(tmp_path: Path, space, *, metric: str = "val_psnr", mode: str = "max", max_t: int,
            design=None, sampler=None, inner: Optional[TrialScheduler] = None, name: str = "s",
            db: str = "optuna.db") -> Harness:
    """A Harness over `tmp_path/db`; `space` is a define-by-run function."""
    from ray.tune.schedulers import FIFOScheduler

    record = StudyRecord(f"sqlite:///{tmp_path / db}", name, mode=mode,
                         sampler=sampler or optuna.samplers.RandomSampler(seed=0))
    searcher = StudySearcher(space, record, metric=metric, mode=mode, max_t=max_t, design=design)
    scheduler = RecordingScheduler(inner or FIFOScheduler(), record, metric=metric, num_epoch=max_t)
    return Harness(searcher, scheduler, record)
