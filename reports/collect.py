"""Collect steps: tidy frames -> exactly the numbers one figure shows.

Pure functions (no Plotly), each returning a DataFrame or NamedTuple, so the
numbers are tested exactly and the draw steps in reports/draw.py only draw.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from reports.load import ALL_TRIALS, KL, NOT_SAMPLED, Experiment, ExperimentSet, ParamAxis

EDGE_FRACTION = 0.05  # "at the edge": within 5% of the range from min or max
MIN_COMPLETE_FOR_IMPORTANCE = 4
ENDED_EARLY = ("stopped", "diverged", "failed")


def strategy(trials: pd.DataFrame) -> pd.Series:
    """The stratum (strategy) of each row: the `stratum` column (reports/load.py fills
    it for old folders), else the KL annealing type, else 'all trials'."""
    if "stratum" in trials:
        return trials["stratum"].fillna(NOT_SAMPLED).astype(str)
    if KL in trials:
        return trials[KL].fillna(NOT_SAMPLED).astype(str)
    return pd.Series(ALL_TRIALS, index=trials.index, dtype=object)


def search_only(df: pd.DataFrame) -> pd.DataFrame:
    """The search-phase rows: figures that describe the search itself (what it
    tried, what it found, what it cost) leave the re-evaluation runs out."""
    return df[df["phase"] == "search"] if "phase" in df else df


def _finite(df: pd.DataFrame, col: str = "best_val_psnr") -> pd.DataFrame:
    return df[np.isfinite(pd.to_numeric(df[col], errors="coerce").astype(float))]


# ---- summary ---------------------------------------------------------------

class Summary(NamedTuple):
    experiment: str
    n_trials: int  # search phase
    counts: dict[str, int]  # search phase: completed / stopped / diverged / failed / running
    epochs_spent: int  # search phase
    epochs_budget: int  # search trials x num_epoch
    epochs_saved_by_asha: int  # epochs stopped trials did not run
    wall_time_s: float | None  # summary.json (None while the search runs)
    compute_time_s: float  # sum of epoch_time_s over all trial-epochs (both phases)
    best_trial_id: str | None
    best_val_psnr: float | None
    best_epoch: int | None
    best_config: dict[str, Any]
    baseline_psnr: float | None  # copy-first-frame PSNR of the val video
    n_reeval: int = 0  # re-evaluation runs (phase reeval)
    reeval_counts: dict[str, int] = {}  # their statuses
    reeval_epochs: int = 0  # epochs they trained


def _status_counts(t: pd.DataFrame) -> dict[str, int]:
    return {s: int((t["status"] == s).sum()) for s in ("completed", "stopped", "diverged", "failed", "running")}


def collect_summary(exp: Experiment) -> Summary:
    t = search_only(exp.trials)
    re = exp.trials[exp.trials["phase"] == "reeval"] if "phase" in exp.trials else exp.trials.iloc[:0]
    counts = _status_counts(t)
    stopped = t[t["status"] == "stopped"]
    best = _best_row(t)
    wall = exp.summary.get("wall_time_s")
    base = exp.summary.get("baseline_psnr")
    time_col = exp.epochs["epoch_time_s"] if "epoch_time_s" in exp.epochs else pd.Series(dtype=float)
    return Summary(
        experiment=exp.name, n_trials=len(t), counts=counts,
        epochs_spent=int(t["epochs_run"].sum()), epochs_budget=int(t["epochs_budget"].sum()),
        epochs_saved_by_asha=int((stopped["epochs_budget"] - stopped["epochs_run"]).clip(lower=0).sum()),
        wall_time_s=float(wall) if isinstance(wall, (int, float)) else None,
        compute_time_s=float(time_col.fillna(0).sum()),
        best_trial_id=None if best is None else str(best["trial_id"]),
        best_val_psnr=None if best is None else float(best["best_val_psnr"]),
        best_epoch=None if best is None else int(best["best_epoch"]),
        best_config={} if best is None else {p: _py(best[p]) for p in exp.params if _present(best[p])},
        baseline_psnr=float(base) if isinstance(base, (int, float)) else None,
        n_reeval=len(re), reeval_counts=_status_counts(re), reeval_epochs=int(re["epochs_run"].sum()),
    )


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _py(v: Any) -> Any:
    """numpy scalars -> plain Python (ints stay ints: 6.0 -> 6)."""
    v = v.item() if isinstance(v, np.generic) else v
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _best_row(trials: pd.DataFrame) -> pd.Series | None:
    ok = _finite(trials)
    if ok.empty:
        return None
    return ok.loc[ok["best_val_psnr"].astype(float).idxmax()]


# ---- written verdict ---------------------------------------------------------

class StrategyResult(NamedTuple):
    strategy: str
    best_val_psnr: float
    best_trial_id: str
    n_trials: int  # with a value
    n_completed: int
    spread_std: float | None  # std (ddof=1) of completed trials' best val_psnr; None if < 2
    spread_range: float | None  # max - min of the same


class Verdict(NamedTuple):
    experiment: str
    ranking: list[StrategyResult]  # best first
    gap_db: float | None  # winner minus runner-up
    gap_exceeds_spread: bool | None  # None when the spread is unknown
    baseline_psnr: float | None
    still_improving_db: float | None  # best trial's gain over the last quarter of its epochs


def collect_verdict(exp: Experiment) -> Verdict:
    """The verdict from the search trials alone (folders without a comparison block)."""
    t = _finite(search_only(exp.trials)).assign(strategy=lambda d: strategy(d))
    ranking = []
    for s, g in t.groupby("strategy"):
        done = g[g["status"] == "completed"]["best_val_psnr"].astype(float)
        top = g.loc[g["best_val_psnr"].astype(float).idxmax()]
        ranking.append(StrategyResult(
            strategy=str(s), best_val_psnr=float(top["best_val_psnr"]), best_trial_id=str(top["trial_id"]),
            n_trials=len(g), n_completed=len(done),
            spread_std=float(done.std(ddof=1)) if len(done) >= 2 else None,
            spread_range=float(done.max() - done.min()) if len(done) >= 2 else None))
    ranking.sort(key=lambda r: -r.best_val_psnr)
    gap = ranking[0].best_val_psnr - ranking[1].best_val_psnr if len(ranking) >= 2 else None
    spread = ranking[0].spread_range if ranking else None
    base = exp.summary.get("baseline_psnr")
    return Verdict(
        experiment=exp.name, ranking=ranking, gap_db=gap,
        gap_exceeds_spread=None if gap is None or spread is None else bool(gap > spread),
        baseline_psnr=float(base) if isinstance(base, (int, float)) else None,
        still_improving_db=still_improving(exp, ranking[0].best_trial_id) if ranking else None)


def still_improving(exp: Experiment, trial_id: str) -> float | None:
    """val_psnr gained over the last quarter of the trial's epochs (>0: it was still learning)."""
    g = exp.epochs[exp.epochs["trial_id"] == trial_id].sort_values("epoch")
    v = g["val_psnr"].astype(float).to_numpy() if "val_psnr" in g else np.array([])
    if len(v) < 2 or not np.isfinite(v[-1]):
        return None
    k = max(1, len(v) // 4)
    return float(v[-1] - v[-1 - k])


# ---- re-evaluated best configurations (summary.json's comparison block) -----------

class StratumResult(NamedTuple):
    stratum: str
    position: int  # display order (the block's strata order), the figure's x
    trials: int  # search trials of the stratum
    stopped: int
    best_trial: str | None
    n: int  # full-budget re-runs of the best configuration (the search run that chose it is not counted)
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    enough_evidence: bool
    original_value: float | None  # the search run's own value: shown, never counted (it was selected by it)
    failed_reruns: int  # re-runs that failed, diverged or were stopped: counted against the stratum
    failed_text: str  # e.g. "1 of 3 re-runs diverged", "" when none failed


class Comparison(NamedTuple):
    experiment: str
    metric: str
    mode: str  # max | min
    confidence: float
    strata: list[StratumResult]  # display order
    order: list[str]  # best mean first, strata without evidence last
    winner: str | None
    runner_up: str | None
    verdict: str  # decisive | equivalent | not enough evidence
    decisive: bool
    reason: str  # the verdict as search/comparison.py wrote it
    seeds_to_separate: int | None
    points: pd.DataFrame  # stratum, position, x, kind (original | re-run), value, trial_id, seed
    baseline: float | None


# Where a stratum's marks sit around its tick (x = position): its runs spread over
# POINTS_SPREAD centred at POINTS_OFFSET, the mean with its interval at MEAN_OFFSET.
POINTS_OFFSET, POINTS_SPREAD, MEAN_OFFSET = -0.1, 0.16, 0.15


def collect_comparison(exp: Experiment) -> Comparison | None:
    """The `comparison` block of summary.json (search/comparison.py) as numbers to
    show: None for folders written before it existed. Run values are matched to
    the re-evaluation trials of trials.csv (by stratum and final val_psnr) to name
    their trial and seed; a value without a match is still shown, unnamed."""
    block = exp.comparison
    if block is None:
        return None
    strata = []
    rows: list[dict[str, Any]] = []
    reruns = _reeval_finals(exp)
    for pos, (name, b) in enumerate(block["strata"].items()):
        b = b if isinstance(b, dict) else {}
        name = str(name)
        strata.append(StratumResult(
            stratum=name, position=pos, trials=_int(b.get("trials")), stopped=_int(b.get("stopped")),
            best_trial=None if b.get("best_trial") is None else str(b["best_trial"]), n=_int(b.get("n")),
            mean=_num(b.get("mean")), std=_num(b.get("std")), ci_low=_num(b.get("ci_low")),
            ci_high=_num(b.get("ci_high")), enough_evidence=bool(b.get("enough_evidence")),
            original_value=_num(b.get("original_value")), failed_reruns=_int(b.get("failed_reruns")),
            failed_text=str(b.get("failed_text") or "")))
        original = strata[-1].original_value
        runs = [("original", original, strata[-1].best_trial)] if original is not None else []
        runs += [("re-run", v, None) for v in map(_num, _list(b.get("reeval_values"))) if v is not None]
        left = list(reruns.get(name, []))
        for k, (kind, value, tid) in enumerate(runs):
            seed: Any = _seed_of(exp, tid) if tid else None
            if kind == "re-run":
                hit = next((m for m in left if math.isclose(m[1], value, rel_tol=1e-9, abs_tol=1e-9)), None)
                if hit is not None:
                    left.remove(hit)
                    tid, seed = hit[0], hit[2]
            shift = POINTS_SPREAD * (k / (len(runs) - 1) - 0.5) if len(runs) > 1 else 0.0
            rows.append({"stratum": name, "position": pos, "x": round(pos + POINTS_OFFSET + shift, 6),
                         "kind": kind, "value": value, "trial_id": tid, "seed": seed})
    base = exp.summary.get("baseline_psnr")
    winner, runner = block.get("winner"), block.get("runner_up")
    seeds = block.get("seeds_to_separate")
    return Comparison(
        experiment=exp.name, metric=str(block.get("metric", "val_psnr")),
        mode="min" if block.get("mode") == "min" else "max",
        confidence=_num(block.get("confidence")) or 0.95, strata=strata,
        order=[str(o) for o in _list(block.get("order"))],
        winner=None if winner is None else str(winner), runner_up=None if runner is None else str(runner),
        verdict=str(block.get("verdict") or ("decisive" if block.get("decisive") else "not enough evidence")),
        decisive=bool(block.get("decisive")), reason=str(block.get("reason", "")),
        seeds_to_separate=int(seeds) if isinstance(seeds, int) and not isinstance(seeds, bool) else None,
        points=pd.DataFrame(rows, columns=["stratum", "position", "x", "kind", "value", "trial_id", "seed"]),
        baseline=float(base) if isinstance(base, (int, float)) else None)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _int(v: Any) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else 0


def _list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list) else []


def _reeval_finals(exp: Experiment) -> dict[str, list[tuple[str, float, Any]]]:
    """stratum -> (trial_id, final val_psnr, seed) of its completed re-evaluation runs."""
    t = exp.trials
    if "phase" not in t:
        return {}
    t = _finite(t[(t["phase"] == "reeval") & (t["status"] == "completed")], "final_val_psnr")
    out: dict[str, list[tuple[str, float, Any]]] = {}
    for r in t.itertuples():
        seed = None if pd.isna(r.seed) else int(r.seed)
        out.setdefault(str(r.stratum), []).append((str(r.trial_id), float(r.final_val_psnr), seed))
    return out


def _seed_of(exp: Experiment, trial_id: str) -> int | None:
    hit = exp.trials[exp.trials["trial_id"] == trial_id]
    if hit.empty or "seed" not in hit or pd.isna(hit["seed"].iloc[0]):
        return None
    return int(hit["seed"].iloc[0])


# ---- val_psnr vs epoch -----------------------------------------------------

def collect_curves(es: ExperimentSet) -> pd.DataFrame:
    """One row per trial per epoch; `last` marks a trial's final row, `ended_early`
    a trial ASHA stopped (or that diverged or failed) before its budget.

    Re-evaluation runs stay in (phase column): they show how much a configuration's
    curve moves with the seed, and draw_curves dots them so they never pass for
    search trials."""
    e = es.epochs.merge(es.trials[["experiment", "trial_id", "epochs_budget", "order"]],
                        on=["experiment", "trial_id"])
    e = e.assign(strategy=strategy(e))
    e = e.sort_values(["experiment", "order", "epoch"]).reset_index(drop=True)
    last = e.groupby(["experiment", "trial_id"])["epoch"].transform("max") == e["epoch"]
    early = e["status"].isin(ENDED_EARLY) & (e["epoch"] < e["epochs_budget"])
    # A diverged trial's last val_psnr is NaN: its end marker sits on its last finite value.
    end = e["val_psnr"].where(np.isfinite(e["val_psnr"].astype(float))).groupby(
        [e["experiment"], e["trial_id"]]).ffill()
    cols = ["experiment", "trial_id", "status", "phase", "seed", "strategy", "epoch", "val_psnr"]
    out = e[cols].assign(last=last.to_numpy(), ended_early=(last & early).to_numpy(),
                         end_psnr=end.where(last).to_numpy())
    # An epoch that was not validated (val_every) has no val_psnr: no point, and the
    # line joins the validated epochs around it (a NaN would cut it into dots).
    return out[out["val_psnr"].notna() | out["last"]].reset_index(drop=True)


# ---- isolation and combination table ----------------------------------------

def collect_isolation(es: ExperimentSet, param: str) -> pd.DataFrame:
    """Best val_psnr reached for each value of a scientific parameter, over all
    nuisance settings (the Tuning Playbook's isolation plot)."""
    t = _finite(search_only(es.trials))
    if param not in t or t.empty:
        return pd.DataFrame(columns=["experiment", "value", "best_val_psnr", "trial_id", "n_trials"])
    t = t.assign(value=t[param].map(_label))
    rows = []
    for (exp, val), g in t.groupby(["experiment", "value"], sort=False):
        top = g.loc[g["best_val_psnr"].astype(float).idxmax()]
        rows.append({"experiment": exp, "value": val, "best_val_psnr": float(top["best_val_psnr"]),
                     "trial_id": top["trial_id"], "n_trials": len(g)})
    out = pd.DataFrame(rows)
    order = _value_order(es, param, out["value"])
    return (out.assign(_k=out["value"].map(order.index)).sort_values(["experiment", "_k"])
            .drop(columns="_k").reset_index(drop=True))


def collect_combinations(es: ExperimentSet, params: list[str]) -> pd.DataFrame:
    """Best val_psnr per combination of scientific values (e.g. KL strategy x
    teacher-forcing setting): one row per experiment and combination."""
    t = _finite(search_only(es.trials))
    params = [p for p in params if p in t]
    cols = ["experiment", *params, "best_val_psnr", "trial_id", "n_trials"]
    if not params:
        return pd.DataFrame(columns=cols)
    t = t.assign(**{p: t[p].map(_label) for p in params})
    rows = []
    for key, g in t.groupby(["experiment", *params], sort=True):
        top = g.loc[g["best_val_psnr"].astype(float).idxmax()]
        rows.append(dict(zip(["experiment", *params], key)) | {
            "best_val_psnr": float(top["best_val_psnr"]), "trial_id": top["trial_id"], "n_trials": len(g)})
    return pd.DataFrame(rows, columns=cols)


def _label(v: Any) -> str:
    """A parameter value as text: 6.0 -> '6', NaN -> 'not sampled'."""
    if not _present(v):
        return NOT_SAMPLED
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:.4g}"
    return str(v)


def _value_order(es: ExperimentSet, param: str, values: pd.Series) -> list[str]:
    """Values in the order space.yaml lists them, then numerically, 'not sampled' last."""
    listed = []
    for e in es.experiments:
        listed += [_label(v) for v in e.space.get(param, ParamAxis(param)).values]
    rest = sorted(set(values) - set(listed) - {NOT_SAMPLED}, key=_num_key)
    order = list(dict.fromkeys(listed + rest))
    return [v for v in order if v in set(values)] + ([NOT_SAMPLED] if NOT_SAMPLED in set(values) else [])


def _num_key(s: str) -> tuple[int, float, str]:
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


# ---- hyperparameter axes -----------------------------------------------------

class AxisParam(NamedTuple):
    experiment: str
    param: str
    kind: str  # numeric | categorical
    log: bool


class Axes(NamedTuple):
    params: list[AxisParam]  # every parameter that varied, per experiment
    points: pd.DataFrame  # experiment, trial_id, param, value, best_val_psnr, status, strategy
    warnings: list[str]  # best trial at the edge of a numeric range
    n_without_value: int  # trials with no finite val_psnr (not drawn)


def collect_axes(es: ExperimentSet) -> Axes:
    params: list[AxisParam] = []
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    for exp in es.experiments:
        searched = search_only(exp.trials)
        t = _finite(searched)
        stratum = strategy(t)
        for p in exp.params:
            vals = searched[p].dropna()
            if vals.nunique() < 2:
                continue  # a parameter that did not vary says nothing here
            spec = exp.space.get(p, ParamAxis(p))
            numeric = pd.api.types.is_numeric_dtype(searched[p]) and spec.kind != "categorical"
            params.append(AxisParam(exp.name, p, "numeric" if numeric else "categorical", bool(numeric and spec.log)))
            for i, r in t.iterrows():
                if _present(r[p]):
                    rows.append({"experiment": exp.name, "trial_id": r["trial_id"], "param": p,
                                 "value": float(r[p]) if numeric else _label(r[p]),
                                 "best_val_psnr": float(r["best_val_psnr"]), "status": r["status"],
                                 "strategy": stratum[i]})
        warnings += _edge_warnings(exp)
    searched_all = search_only(es.trials)
    n_without = int(len(searched_all) - len(_finite(searched_all)))
    cols = ["experiment", "trial_id", "param", "value", "best_val_psnr", "status", "strategy"]
    return Axes(params, pd.DataFrame(rows, columns=cols), warnings, n_without)


def _edge_warnings(exp: Experiment) -> list[str]:
    best = _best_row(search_only(exp.trials))
    if best is None:
        return []
    out = []
    for p in exp.params:
        spec = exp.space.get(p)
        if spec is None or spec.low is None or spec.high is None or not _present(best[p]):
            continue
        pos = _position(float(best[p]), spec)
        if pos is None:
            continue
        if pos <= EDGE_FRACTION or pos >= 1 - EDGE_FRACTION:
            side, bound = ("lower", spec.low) if pos <= EDGE_FRACTION else ("upper", spec.high)
            out.append(f"{exp.name}: the best trial ({best['trial_id']}, {float(best['best_val_psnr']):.2f} dB) "
                       f"has {p} = {_label(float(best[p]))}, at the {side} edge of its range "
                       f"[{_label(spec.low)}, {_label(spec.high)}]: the optimum may lie outside it; "
                       f"widen the range past {_label(bound)} and search again.")
    return out


def _position(v: float, spec: ParamAxis) -> float | None:
    """Where v sits in [low, high] as a fraction (in log space for log distributions)."""
    lo, hi = float(spec.low), float(spec.high)  # type: ignore[arg-type]
    if spec.log:
        if lo <= 0 or hi <= 0 or v <= 0:
            return None
        lo, hi, v = math.log10(lo), math.log10(hi), math.log10(v)
    return None if hi <= lo else (v - lo) / (hi - lo)


# ---- best trial per KL strategy: per-frame, losses, schedules ----------------

def collect_best_per_strategy(es: ExperimentSet) -> pd.DataFrame:
    """The best search trial of each strategy (stratum) in each experiment, with a legend label."""
    t = _finite(search_only(es.trials))
    t = t.assign(strategy=strategy(t))
    rows = []
    for (exp, s), g in t.groupby(["experiment", "strategy"], sort=True):
        top = g.loc[g["best_val_psnr"].astype(float).idxmax()]
        label = s if len(es.experiments) == 1 else f"{exp} · {s}"
        rows.append({"experiment": exp, "strategy": s, "trial_id": top["trial_id"],
                     "best_val_psnr": float(top["best_val_psnr"]), "label": label})
    return pd.DataFrame(rows, columns=["experiment", "strategy", "trial_id", "best_val_psnr", "label"])


def collect_per_frame(es: ExperimentSet, best: pd.DataFrame) -> pd.DataFrame:
    """Per-frame PSNR (last validation) of each strategy's best trial; trials
    without a val_psnr_per_frame.json are simply absent."""
    pf = es.per_frame.merge(best[["experiment", "trial_id", "strategy", "label"]], on=["experiment", "trial_id"])
    return pf[["experiment", "strategy", "label", "trial_id", "frame", "psnr"]].sort_values(
        ["experiment", "strategy", "frame"]).reset_index(drop=True)


def collect_epoch_metrics(es: ExperimentSet, best: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Per-epoch metrics (losses, or beta/tfr/teacher_forcing) of each strategy's best trial."""
    e = es.epochs.merge(best[["experiment", "trial_id", "strategy", "label"]], on=["experiment", "trial_id"])
    have = [m for m in metrics if m in e]
    return e[["experiment", "strategy", "label", "trial_id", "epoch", *have]].sort_values(
        ["experiment", "strategy", "epoch"]).reset_index(drop=True)


# ---- parallel coordinates ----------------------------------------------------

class Dimension(NamedTuple):
    label: str
    values: list[float]
    tickvals: list[float] | None
    ticktext: list[str] | None


class Parcoords(NamedTuple):
    experiment: str
    dimensions: list[Dimension]  # one per varied parameter, then best val_psnr
    color: list[float]  # best val_psnr of each trial (line colour)
    trial_ids: list[str]


def collect_parcoords(exp: Experiment) -> Parcoords:
    """Trials with a val_psnr value; categorical values become integer ticks,
    log-scaled parameters their log10, and 'not sampled' a tick below the range."""
    searched = search_only(exp.trials)
    t = _finite(searched).reset_index(drop=True)
    dims = []
    for p in exp.params:
        if searched[p].dropna().nunique() < 2 or t.empty:
            continue
        spec = exp.space.get(p, ParamAxis(p))
        if pd.api.types.is_numeric_dtype(searched[p]) and spec.kind != "categorical":
            dims.append(_numeric_dimension(p, t[p].astype(float), spec.log))
        else:
            dims.append(_categorical_dimension(p, t[p], [_label(v) for v in spec.values]))
    psnr = t["best_val_psnr"].astype(float).round(4).tolist()
    dims.append(Dimension("best val_psnr (dB)", psnr, None, None))
    return Parcoords(exp.name, dims, psnr, t["trial_id"].tolist())


def _categorical_dimension(p: str, col: pd.Series, listed: list[str]) -> Dimension:
    labels = col.map(_label)
    present = set(labels)
    cats = [v for v in listed if v in present]
    cats += sorted(present - set(cats) - {NOT_SAMPLED}) + ([NOT_SAMPLED] if NOT_SAMPLED in present else [])
    return Dimension(p, [float(cats.index(v)) for v in labels], [float(i) for i in range(len(cats))], cats)


def _numeric_dimension(p: str, col: pd.Series, log: bool) -> Dimension:
    x = np.log10(col.where(col > 0)) if log else col
    ok = x.dropna()
    lo, hi = float(ok.min()), float(ok.max())
    if log and math.floor(hi) >= math.ceil(lo):  # decades inside the range, plus its ends
        ticks = sorted({lo, hi, *map(float, range(math.ceil(lo), math.floor(hi) + 1))})
    else:
        ticks = [float(v) for v in np.linspace(lo, hi, 5)] if hi > lo else [lo]
    text = [f"{10 ** v if log else v:.3g}" for v in ticks]
    values = x.copy()
    if x.isna().any():
        sentinel = lo - 0.15 * ((hi - lo) or 1.0)  # where 'not sampled' lines pass
        values = x.fillna(sentinel)
        ticks, text = [sentinel, *ticks], [NOT_SAMPLED, *text]
    label = f"{p} (log scale)" if log else p
    return Dimension(label, [round(float(v), 6) for v in values], [round(v, 6) for v in ticks], text)


# ---- parameter importance ----------------------------------------------------

class Importance(NamedTuple):
    experiment: str
    importances: dict[str, float]  # param -> normalised importance, largest first ({} with a note)
    n_complete: int
    note: str | None


def collect_importance(exp: Experiment) -> Importance:
    """Optuna's default evaluator (PED-ANOVA in optuna 5) on the COMPLETE trials of the study."""
    if exp.study_path is None:
        return Importance(exp.name, {}, 0, "no optuna.db in the folder, so importance cannot be computed")
    import optuna  # heavy; only this figure needs it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = _load_study(exp, optuna)
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(complete) < MIN_COMPLETE_FOR_IMPORTANCE:
            return Importance(exp.name, {}, len(complete),
                              f"only {len(complete)} COMPLETE trial(s) in the study; importance needs "
                              f"at least {MIN_COMPLETE_FOR_IMPORTANCE} to mean anything")
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "some regimes have less than 2 trials": expected on small runs
            imp = optuna.importance.get_param_importances(study)
    except Exception as e:  # noqa: BLE001 - any failure of the evaluator becomes a note, not a crash
        return Importance(exp.name, {}, 0, f"Optuna could not compute parameter importance: {e}")
    imp = {k: float(v) for k, v in sorted(imp.items(), key=lambda kv: -kv[1])}
    return Importance(exp.name, imp, len(complete), None)


def _load_study(exp: Experiment, optuna: Any) -> Any:
    storage = f"sqlite:///{exp.study_path}"
    names = optuna.get_all_study_names(storage=storage)
    name = exp.name if exp.name in names else (names[0] if len(names) == 1 else None)
    if name is None:
        raise ValueError(f"{exp.study_path} holds studies {names}, none named {exp.name!r}")
    return optuna.load_study(study_name=name, storage=storage)


# ---- best so far vs epochs spent ---------------------------------------------

def collect_best_so_far(es: ExperimentSet) -> pd.DataFrame:
    """In trial start order: cumulative epochs spent and the best val_psnr seen so far."""
    out = []
    for exp in es.experiments:
        t = search_only(exp.trials).sort_values("order")
        psnr = t["best_val_psnr"].astype(float)
        out.append(pd.DataFrame({
            "experiment": exp.name, "order": t["order"].to_numpy(), "trial_id": t["trial_id"].to_numpy(),
            "cum_epochs": t["epochs_run"].cumsum().to_numpy(), "val_psnr": psnr.to_numpy(),
            "best_so_far": psnr.cummax().to_numpy()}))  # cummax skips NaN rows but keeps them NaN
    df = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    if not df.empty:
        df["best_so_far"] = df.groupby("experiment")["best_so_far"].ffill()
    return df


# ---- frames ---------------------------------------------------------------------

class Frames(NamedTuple):
    experiment: str
    trial_id: str | None
    path: Any  # Path | None
    note: str | None


def collect_frames(exp: Experiment) -> Frames:
    best = _best_row(search_only(exp.trials))
    if best is None:
        return Frames(exp.name, None, None, "no trial has a val_psnr yet")
    tid = str(best["trial_id"])
    path = exp.frames_png.get(tid)
    note = None if path else f"the best trial {tid} has no frames.png"
    return Frames(exp.name, tid, path, note)
