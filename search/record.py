"""The search's one record: an Optuna study, through Optuna's public API only.

Every search and re-evaluation trial is an Optuna trial. The Ray trials that run
it are its attempts (user attribute `attempts`: their Ray ids, in order); a
resumed search starts a new Tune run whose trials attach to the study trials
that were interrupted. What the study holds per trial:

- params: the sampled parameters (Optuna's own), and `config`: the full dict the
  define-by-run space returned (constants included), which an attempt trains;
- intermediate values: the metric at each epoch (step = the trainer's epoch);
- state: RUNNING until the driver commits the end (COMPLETE with its value, or
  PRUNED, or FAIL) in `finish`, *before* Tune hears the result is final;
- user attributes: `trial_id` (the id trials.csv and trials/<id>/ use),
  `phase`, `stratum`, `status` (runfolder.status), `final_epoch`, and for re-runs
  `seed` and `reeval_of` (the search trial they repeat).

Storage: any Optuna storage URL (`sqlite:///...`, `postgresql://...`,
`mysql://...`), or a journal file (`journal:///path/file.log`, or a path ending in
`.log`), which a multi-node cluster can keep on shared disk.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

import optuna
from optuna.trial import FrozenTrial, TrialState

from runfolder.status import OPTUNA_STATE
from search.strata import PHASE_KEY, SEARCH, STRATUM_KEY

TRIAL_ID_ATTR = "trial_id"
ATTEMPTS_ATTR = "attempts"
CONFIG_ATTR = "config"
STATUS_ATTR = "status"
FINAL_EPOCH_ATTR = "final_epoch"
SEED_ATTR = "seed"
REEVAL_OF_ATTR = "reeval_of"
ABANDONED_ATTR = "abandoned"  # asked, then the driver died before handing it out: not one of the trials
JOURNAL_PREFIX = "journal://"
UNFINISHED = (TrialState.RUNNING, TrialState.WAITING)


class StorageError(ValueError):
    """A --storage value Optuna cannot open (exit code 2)."""


def trial_key(number: int) -> str:
    """The id of study trial `number` in trials.csv, trials/<id>/ and the console."""
    return f"t{number:04d}"


def trial_number(key: str) -> int:
    """The inverse of trial_key: "t0007" -> 7."""
    return int(key[1:])


def default_storage_url(run_dir: Path) -> str:
    return f"sqlite:///{Path(run_dir).resolve() / 'optuna.db'}"


def journal_path(url: str) -> Optional[Path]:
    """The file of a journal-storage URL, or None for a database URL."""
    if url.startswith(JOURNAL_PREFIX):
        return Path(url[len(JOURNAL_PREFIX):])
    if "://" not in url and url.endswith(".log"):
        return Path(url)
    return None


def open_storage(url: str) -> optuna.storages.BaseStorage:
    journal = journal_path(url)
    try:
        if journal is not None:
            from optuna.storages.journal import JournalFileBackend

            journal.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
        return optuna.storages.RDBStorage(url)
    except Exception as err:  # noqa: BLE001 - SQLAlchemy and Optuna raise many types for a bad URL
        raise StorageError(f"--storage {url!r}: Optuna cannot open it ({type(err).__name__}: "
                           f"{str(err).splitlines()[0][:200]}); expected an Optuna storage URL such as "
                           "sqlite:///runs/NAME/optuna.db, postgresql://user@host/db or "
                           "journal:///shared/NAME.log") from None


def storage_has_study(url: str, study_name: str) -> bool:
    """Whether the storage exists and holds a study of that name with at least one trial."""
    journal = journal_path(url)
    if journal is not None and not journal.exists():
        return False
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return False
    storage = open_storage(url)
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return False
    return storage.get_n_trials(study_id) > 0


class StudyRecord:
    """The study plus the mapping from trial numbers to storage ids."""

    def __init__(self, storage_url: str | optuna.storages.BaseStorage, study_name: str, *, mode: str,
                 sampler: Optional[optuna.samplers.BaseSampler] = None) -> None:
        """`storage_url`: an Optuna storage URL, or a storage object (a benchmark's in-memory one)."""
        self.storage_url = storage_url if isinstance(storage_url, str) else type(storage_url).__name__
        self.storage = open_storage(storage_url) if isinstance(storage_url, str) else storage_url
        self.study = optuna.create_study(
            study_name=study_name, storage=self.storage, sampler=sampler, load_if_exists=True,
            direction="maximize" if mode == "max" else "minimize")
        self._study_id = self.storage.get_study_id_from_name(study_name)
        self._ids: dict[int, int] = {}

    # --- reading ---------------------------------------------------------------
    def trials(self, states: Optional[Iterable[TrialState]] = None) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=tuple(states) if states else None)

    def trial(self, number: int) -> FrozenTrial:
        return self.storage.get_trial(self._id(number))

    def interrupted(self) -> list[FrozenTrial]:
        """RUNNING trials: asked by a driver that is gone (the caller holds the run folder's lock)."""
        return self.trials(states=(TrialState.RUNNING,))

    def _id(self, number: int) -> int:
        if number not in self._ids:
            self._ids[number] = self.storage.get_trial_id_from_study_id_trial_number(self._study_id, number)
        return self._ids[number]

    # --- writing ---------------------------------------------------------------
    def ask(self) -> optuna.Trial:
        return self.study.ask()

    def enqueue(self, params: dict[str, Any], user_attrs: dict[str, Any]) -> None:
        self.study.enqueue_trial(params, user_attrs=user_attrs)

    def set_attr(self, number: int, key: str, value: Any) -> None:
        self.storage.set_trial_user_attr(self._id(number), key, value)

    def add_attempt(self, number: int, ray_trial_id: str) -> None:
        attempts = list(self.trial(number).user_attrs.get(ATTEMPTS_ATTR, []))
        if ray_trial_id not in attempts:
            self.set_attr(number, ATTEMPTS_ATTR, [*attempts, ray_trial_id])

    def report(self, number: int, epoch: int, value: float) -> None:
        """The metric at an epoch. A repeated epoch (an attempt continuing from a checkpoint) is
        written again: the trainer is deterministic, so it is the same value."""
        try:
            self.storage.set_trial_intermediate_value(self._id(number), int(epoch), float(value))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # a result still in flight after the trial's end was committed: not part of the trial

    def is_finished(self, number: int) -> bool:
        return self.trial(number).state.is_finished()

    def abandon(self, number: int) -> None:
        """A trial asked by a driver killed before it wrote the trial's config (milliseconds after
        the ask): nothing ran it and its parameters may be half-sampled. It ends as FAIL, marked
        abandoned, and no count, view or comparison includes it; the search asks another."""
        self.set_attr(number, ABANDONED_ATTR, True)
        self.set_attr(number, STATUS_ATTR, "failed")
        self.study.tell(number, None, state=TrialState.FAIL)

    def finish(self, number: int, status: str, *, value: Optional[float] = None,
               epoch: Optional[int] = None) -> bool:
        """Commit the end of a trial; False (nothing changed) when it had ended already."""
        if self.is_finished(number):
            return False
        state = TrialState[OPTUNA_STATE[status]]
        self.set_attr(number, STATUS_ATTR, status)
        if epoch is not None:
            self.set_attr(number, FINAL_EPOCH_ATTR, int(epoch))
        values = float(value) if state is TrialState.COMPLETE else None
        self.study.tell(number, values, state=state)
        return True


def counted(frozen: FrozenTrial) -> bool:
    """Whether a study trial is one of the search's trials (not an abandoned ask)."""
    return not frozen.user_attrs.get(ABANDONED_ATTR, False)


def handed_out(frozen: FrozenTrial) -> bool:
    """Whether the searcher finished preparing the trial (its config is in the record)."""
    return CONFIG_ATTR in frozen.user_attrs


def phase_of(frozen: FrozenTrial) -> str:
    return str(frozen.user_attrs.get(PHASE_KEY, SEARCH))


def stratum_of(frozen: FrozenTrial) -> str:
    return str(frozen.user_attrs.get(STRATUM_KEY, ""))


def key_of(frozen: FrozenTrial) -> str:
    return str(frozen.user_attrs.get(TRIAL_ID_ATTR) or trial_key(frozen.number))


def config_of(frozen: FrozenTrial) -> dict[str, Any]:
    """The full sampled config of a trial (its params when an older record has no `config`)."""
    return dict(frozen.user_attrs.get(CONFIG_ATTR) or frozen.params)
