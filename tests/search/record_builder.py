"""Runs written as a search writes them, without Ray: a real study (search.record) and each
trial's metrics.jsonl (search.trial_files), for tests of the views built from them."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import optuna

from search.record import StudyRecord, default_storage_url, trial_key
from search.trial_files import TrialFiles


class RecordBuilder:
    def __init__(self, run_dir: Path, mode: str = "max", metric: str = "val_psnr") -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir, self.metric = run_dir, metric
        self.record = StudyRecord(default_storage_url(run_dir), "r", mode=mode,
                                  sampler=optuna.samplers.RandomSampler(seed=0))
        self.keys: dict[str, str] = {}  # a test's name for a trial -> its trial id

    def add(self, name: str, params: dict[str, Any], results: list[dict[str, Any]], *,
            status: Optional[str] = None, phase: str = "search", stratum: Optional[str] = None,
            extra_attrs: Optional[dict[str, Any]] = None) -> str:
        """One trial: its params, its epochs' results, and its end when `status` is given."""
        trial = self.record.ask()
        number = trial.number
        key = trial_key(number)
        attrs = {"trial_id": key, "config": dict(params), "phase": phase}
        if stratum is not None:
            attrs["stratum"] = stratum
        attrs.update(extra_attrs or {})
        for attr, value in attrs.items():
            self.record.set_attr(number, attr, value)
        files = TrialFiles(self.run_dir, key)
        for result in results:
            files.append_metrics(result)
            self.record.report(number, int(result["epoch"]), result[self.metric])
        if status is not None:
            last = results[-1] if results else {}
            self.record.finish(number, status, value=last.get(self.metric), epoch=last.get("epoch"))
        self.keys[name] = key
        return key

    def trials(self) -> list:
        return self.record.trials()
