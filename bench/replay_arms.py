"""The arms of bench/replay.py: each search method as the project would run it, and the proposer that
drives it inside a replayed search (bench/simulator.py) without starting Ray.

An arm is a sampler (the hand grid, scrambled Sobol, or the project's Optuna searcher over a space file
the project's loader checks) and a scheduler (none, Ray's ASHA or search.scheduler.ScheduleAwareASHA);
bench/replay.py's docstring says what each arm stands for.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from bench.curves import active, from_unit
from bench.simulator import WORKERS, ReplayTrial
from bench.table import Table

ARMS = ("grid", "random", "qmc", "tpe", "tpe_asha", "ours", "ours_random", "strata9", "hyperband")
ARM_TEXT = {
    "grid": "hand grid (writeups-grid.yaml, 6 runs)",
    "random": "random search, no stopping",
    "qmc": "Sobol QMC, no stopping",
    "tpe": "TPE (quick.yaml's sampler), no stopping",
    "tpe_asha": "TPE + Ray's ASHA",
    "ours": "stratified TPE + ScheduleAwareASHA (quick.yaml before issue 12)",
    "ours_random": "stratified random + ScheduleAwareASHA (quick.yaml's default since)",
    "strata9": "KL x tfr strata TPE + ScheduleAwareASHA",
    "hyperband": "stratified TPE + ScheduleAwareASHA, 2 brackets",
}


def _space_variant(table_space_dict: dict[str, Any], *, sampler: dict[str, Any], asha: Optional[dict[str, Any]],
                   strata: str, scientific: tuple[str, ...], tmp: Path, name: str):
    """A SearchSpace over the table's parameters with these settings (search.space checks it as it would a file)."""
    from search.space import load_space

    raw = copy.deepcopy(table_space_dict)
    raw["name"] = name
    raw["sampler"] = sampler
    raw["early_terminate"] = dict(asha) if asha else {"type": "none"}
    raw["trials"] = {**raw["trials"], "num_samples": 1000, "strata": strata}
    raw["reeval"] = {"seeds": 0}
    for pname, spec in raw["parameters"].items():
        spec.pop("role", None)
        if pname in scientific:
            spec["role"] = "scientific"
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_space(path)


@dataclass
class ArmSpec:
    name: str
    kind: str                       # grid | qmc | optuna
    space: Any = None               # SearchSpace (optuna arms)
    scheduler: Optional[Callable[[], Any]] = None  # a fresh scheduler per repetition (None: FIFO)
    settings: dict[str, Any] = field(default_factory=dict)


def make_arms(table: Table, quick: dict[str, Any], names: tuple[str, ...], tmp: Path) -> dict[str, ArmSpec]:
    from ray.tune.schedulers import ASHAScheduler

    from search.scheduler import ScheduleAwareASHA, earliest_stop_epoch

    max_t = table.max_t
    et = quick["early_terminate"]
    grace, rf = min(int(et.get("grace_period", 2)), max_t), float(et.get("reduction_factor", 3))
    tpe = {"type": "tpe", "seed": 0, "n_startup_trials": quick["sampler"].get("n_startup_trials")}
    tpe = {k: v for k, v in tpe.items() if v is not None}
    rnd = {"type": "random", "seed": 0}
    asha = {"type": "asha", "grace_period": grace, "reduction_factor": rf}
    hb = {"type": "asha", "grace_period": 1, "reduction_factor": rf, "brackets": 2}

    def aware(spec: dict[str, Any]) -> Callable[[], Any]:
        earliest = functools.partial(earliest_stop_epoch, fixed=dict(table.space["fixed"]),
                                     grace_period=spec["grace_period"], num_epoch=max_t)
        return lambda: ScheduleAwareASHA(time_attr="epoch", metric="val_psnr", mode="max", max_t=max_t,
                                         grace_period=spec["grace_period"], reduction_factor=spec["reduction_factor"],
                                         brackets=spec.get("brackets", 1), earliest_stop=earliest)

    def ray_asha() -> Any:
        return ASHAScheduler(time_attr="epoch", metric="val_psnr", mode="max", max_t=max_t, grace_period=grace,
                             reduction_factor=rf)

    kl = ("kl_anneal_type",)
    recipes = {
        "random": dict(sampler=rnd, asha=None, strata="free", scientific=kl, scheduler=None),
        "tpe": dict(sampler=tpe, asha=None, strata="free", scientific=kl, scheduler=None),
        "tpe_asha": dict(sampler=tpe, asha=asha, strata="free", scientific=kl, scheduler=ray_asha),
        "ours": dict(sampler=tpe, asha=asha, strata="balanced", scientific=kl, scheduler=aware(asha)),
        "ours_random": dict(sampler=rnd, asha=asha, strata="balanced", scientific=kl, scheduler=aware(asha)),
        "strata9": dict(sampler=tpe, asha=asha, strata="balanced", scientific=("kl_anneal_type", "tfr"),
                        scheduler=aware(asha)),
        "hyperband": dict(sampler=tpe, asha=hb, strata="balanced", scientific=kl, scheduler=aware(hb)),
    }
    arms: dict[str, ArmSpec] = {}
    for name in names:
        if name == "grid":
            arms[name] = ArmSpec(name, "grid", settings={"runs": len(table.grid)})
        elif name == "qmc":
            arms[name] = ArmSpec(name, "qmc", settings={"sampler": "scrambled Sobol (torch.quasirandom)",
                                                        "early_terminate": None})
        else:
            r = recipes[name]
            space = _space_variant(table.space, sampler=r["sampler"], asha=r["asha"], strata=r["strata"],
                                   scientific=r["scientific"], tmp=tmp, name=name)
            arms[name] = ArmSpec(name, "optuna", space=space, scheduler=r["scheduler"],
                                 settings={"sampler": r["sampler"], "early_terminate": r["asha"],
                                           "strata": r["strata"], "scientific": list(r["scientific"]),
                                           "scheduler": None if r["scheduler"] is None else
                                           ("ASHAScheduler" if name == "tpe_asha" else "ScheduleAwareASHA")})
    return arms


class Proposer:
    """What a free worker asks: the next configuration (or None), and where results go."""

    def __init__(self, arm: ArmSpec, table: Table, rep_seed: int, max_t: int) -> None:
        self.arm, self.table, self.max_t = arm, table, max_t
        self.count = 0
        self.searcher = None
        if arm.kind == "optuna":
            import optuna
            from ray.tune.schedulers import FIFOScheduler

            from search.record import StudyRecord
            from search.record_scheduler import RecordingScheduler
            from search.sampler import make_sampler
            from search.searcher import StudyDesign, StudySearcher

            space = arm.space
            space.sampler = type(space.sampler)(**{**space.sampler.__dict__, "seed": rep_seed})
            design = StudyDesign(strata={s.key: s.values for s in space.strata()},
                                 scientific=tuple(space.scientific_parameters()),
                                 balanced=space.strata_mode == "balanced")
            # The live search's driver side: the study as the record, each result committed
            # through RecordingScheduler (FIFO inside: the arm's own scheduler decides stops).
            record = StudyRecord(optuna.storages.InMemoryStorage(), f"{arm.name}-{rep_seed}", mode="max",
                                 sampler=make_sampler(space, WORKERS))
            self.searcher = StudySearcher(space.define_by_run, record, metric="val_psnr", mode="max",
                                          max_t=max_t, design=design)
            self.recording = RecordingScheduler(FIFOScheduler(), record, metric="val_psnr", num_epoch=max_t)
            self.configs: dict[str, dict[str, Any]] = {}
        elif arm.kind == "qmc":
            import torch

            self.names = list(table.space["parameters"])
            self.engine = torch.quasirandom.SobolEngine(len(self.names), scramble=True, seed=rep_seed)

    def ask(self) -> Optional[tuple[str, dict[str, Any]]]:
        trial_id = f"t{self.count}"
        if self.arm.kind == "grid":
            if self.count >= len(self.table.grid):
                return None
            config = dict(self.table.designs[self.table.grid[self.count]]["config"])
        elif self.arm.kind == "qmc":
            u = self.engine.draw(1, dtype=__import__("torch").float64)[0].tolist()
            config = active(self.table.space, {n: from_unit(self.table.space["parameters"][n], x)
                                               for n, x in zip(self.names, u)})
        else:
            config = self.searcher.suggest(trial_id)
            if not isinstance(config, dict):  # None (not yet) or FINISHED
                return None
            self.configs[trial_id] = config
        self.count += 1
        return trial_id, config

    def result(self, trial_id: str, result: dict[str, Any]) -> None:
        if self.searcher is not None:
            self.recording.on_trial_result(None, ReplayTrial(trial_id, self.configs[trial_id]), result)

    def complete(self, trial_id: str, result: dict[str, Any]) -> None:
        """The trial's last result (a STOP the arm's scheduler decided is committed as `stopped`)."""
        if self.searcher is not None:
            trial = ReplayTrial(trial_id, self.configs[trial_id])
            self.recording.on_trial_result(None, trial, result)
            self.recording.on_trial_complete(None, trial, result)


def default_arm_of(quick: dict[str, Any]) -> str:
    """The arm quick.yaml's `sampler` and `early_terminate` lines select (its KL type is scientific: balanced strata)."""
    sampler = quick.get("sampler", {}).get("type", "tpe")
    et = quick.get("early_terminate") or {}
    stopping = et.get("type", "none") not in ("none", None)
    if sampler == "grid":
        return "grid"
    if sampler == "qmc":
        return "qmc"
    if sampler == "random":
        return "ours_random" if stopping else "random"
    if stopping and int(et.get("brackets", 1)) > 1:
        return "hyperband"
    return "ours" if stopping else "tpe"
