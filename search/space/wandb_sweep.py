"""W&B sweep files, translated: W&B's distributions, `method`, `run_cap`, hyperband and agent keys.

Parameters use W&B-sweep syntax (`values`, `value`, `distribution` with
`min`/`max`/`q`) plus two extensions: `when` (a conditional parameter) and
`role` (scientific | nuisance). How each W&B distribution maps onto Optuna:

| W&B distribution       | W&B draws                          | here (Optuna)                                         |
|------------------------|------------------------------------|-------------------------------------------------------|
| values / categorical   | one of the values                  | suggest_categorical                                   |
| value / constant       | the value                          | not suggested; returned with the sampled values       |
| int_uniform            | integer in [min, max]              | suggest_int(min, max)                                 |
| uniform                | float in [min, max]                | suggest_float(min, max)                               |
| q_uniform              | round(U(min, max) / q) * q         | the multiples of q in [min, max], uniformly:          |
|                        |                                    | suggest_float(step=q), or suggest_int(step=q) for an  |
|                        |                                    | integer field                                         |
| log_uniform_values     | exp(U(log min, log max))           | suggest_float(log=True)                               |
| q_log_uniform_values   | round(exp(U(log min, log max))/q)*q | suggest_int(log=True) for q=1 on an integer field;    |
|                        |                                    | else suggest_float(log=True) over the multiples of q  |
|                        |                                    | in [min, max], rounded to the nearest one             |
| log_uniform            | exp(U(min, max)): min/max exponents | log_uniform_values over [e^min, e^max]                |
| q_log_uniform          | round(exp(U(min, max)) / q) * q    | q_log_uniform_values over [e^min, e^max]              |
| inv_log_uniform        | exp(-U(min, max))                  | log_uniform_values over [e^-max, e^-min]              |
| inv_log_uniform_values | 1/X, X log-uniform in [1/max, 1/min] | log_uniform_values over [min, max] (the same law)   |
| normal, q_normal, log_normal, q_log_normal, beta, q_beta, categorical_w_probabilities | | refused: unbounded or weighted draws |

W&B's rounding can step outside [min, max] (min=0.05, q=0.1 can give 0.0);
here every value stays inside the bounds, on a multiple of q. For the rounded
log case Optuna records the continuous draw while `define_by_run` returns the
rounded value; Ray's OptunaSearch lays the returned dict over the recorded
values, so the trial trains with the rounded one. As in W&B, `q` defaults to
1 and a missing `distribution` is inferred: values -> categorical, value ->
constant, integer min/max -> int_uniform, other min/max -> uniform.

A W&B sweep file runs unchanged: `method` (bayes | random | grid) picks the
sampler (tpe | random | grid) when no `sampler` block does, `run_cap` is
trials.num_samples, `early_terminate: {type: hyperband, min_iter | max_iter,
eta, s}` becomes ASHA (see `_WandbSweep.hyperband`), `program`, `command`,
`entity`, `project` and `metric.target` are ignored; `SearchSpace.notices`
says each of these in one line. `data` may be left out when --data is given,
`trials` altogether (16 samples, as many at a time as the cluster allows).

Each translation is a step of the parser (a `_WandbSweep` method, called
from search.space.parser and .parameters) and says what it did in `notices`
(a distribution alias: in the parameter's `wandb`, which the dry run shows).
"""
from __future__ import annotations

import math
from typing import Any

from search.errors import SpaceError
from search.space.checks import _Checks
from search.space.helpers import _MISSING, _show, _tidy
from search.space.model import DISTRIBUTIONS, LOG_UNIFORM_VALUES, Q_LOG_UNIFORM_VALUES, AshaSpec

# W&B sweep keys: `method` and `run_cap` are read (the sampler, num_samples); the
# others name W&B's agent and server and are ignored with one line saying so.
WANDB_METHODS = {"bayes": "tpe", "random": "random", "grid": "grid"}
WANDB_IGNORED_KEYS = ("program", "command", "entity", "project")
# W&B distributions that are one of the above with other bounds: name -> (kind, bounds).
# W&B's log_uniform / q_log_uniform / inv_log_uniform take natural-log exponents as
# min/max (exp(U(min, max)), resp. exp(-U(min, max))); inv_log_uniform_values draws
# 1 / X with X log-uniform in [1/max, 1/min], which is log-uniform in [min, max].
WANDB_ALIASES = {
    "log_uniform": (LOG_UNIFORM_VALUES, "exp"),
    "q_log_uniform": (Q_LOG_UNIFORM_VALUES, "exp"),
    "inv_log_uniform": (LOG_UNIFORM_VALUES, "exp-neg"),
    "inv_log_uniform_values": (LOG_UNIFORM_VALUES, "values"),
}
SUPPORTED_DISTRIBUTIONS = (*DISTRIBUTIONS, *WANDB_ALIASES)
# W&B distributions Optuna cannot express: unbounded or weighted draws.
UNSUPPORTED_DISTRIBUTIONS = ("normal", "q_normal", "log_normal", "q_log_normal", "beta", "q_beta",
                             "categorical_w_probabilities")


class _WandbSweep(_Checks):
    """The parser's W&B steps: each reads a sweep key as this space's own, with a notice saying so."""

    def sweep_only_keys(self, top: dict[str, Any]) -> None:
        """W&B's agent/server keys (ignored) and a missing name (W&B names a sweep itself), in place."""
        ignored = [k for k in WANDB_IGNORED_KEYS if k in top]
        if ignored:
            self.notices.append(f"{', '.join(ignored)}: W&B agent/server keys, ignored "
                                "(each trial trains cvae.train in a Ray worker)")
        if "name" not in top:  # W&B names a sweep itself: --name, else the file's name
            top["name"] = self.name_override or self.path.stem
            self.notices.append(f"name: not in the file; {top['name']!r} from "
                                + ("--name" if self.name_override else "the file's name"))

    def wandb_method(self, method: Any, sampler: dict) -> str:
        """The sampler type W&B's `method` selects (bayes -> tpe, ...), checked against sampler.type."""
        method = self.choice(method, "method", tuple(WANDB_METHODS))
        default = WANDB_METHODS[method]
        if "type" in sampler and sampler["type"] != default:
            self.fail("method", method, f"it selects sampler type {default}, and sampler.type is "
                                        f"{_show(sampler['type'])}: give one of them")
        self.notices.append(f"method: {method} -> sampler type {default}")
        return default

    def hoist_constant_epochs(self, top: dict) -> dict:
        """`fixed`, plus W&B's way of fixing the epoch count: parameters.num_epoch: {value: N}."""
        fixed = top.get("fixed") or {}
        params = top.get("parameters")
        spec = params.get("num_epoch") if isinstance(params, dict) else None
        if not (isinstance(spec, dict) and set(spec) == {"value"} and isinstance(fixed, dict)):
            return fixed
        if "num_epoch" in fixed:
            self.fail("parameters.num_epoch.value", spec["value"], "num_epoch is also fixed: give it once")
        top["parameters"] = {k: v for k, v in params.items() if k != "num_epoch"}
        self.notices.append(f"parameters.num_epoch: {{value: {_show(spec['value'])}}} -> fixed.num_epoch "
                            "(every trial's budget and ASHA's max_t)")
        return {**fixed, "num_epoch": spec["value"]}

    def with_run_cap(self, trials: Any, run_cap: Any) -> Any:
        """The trials block with W&B's run_cap as its num_samples."""
        trials = {} if trials is None else trials
        if run_cap is _MISSING:
            return trials
        cap = self.integer(run_cap, "run_cap", 1)
        if isinstance(trials, dict) and "num_samples" in trials and trials["num_samples"] != cap:
            self.fail("run_cap", cap, f"trials.num_samples is {_show(trials['num_samples'])}: "
                                      "give the number of trials once")
        self.samples_key = "run_cap"
        self.notices.append(f"run_cap: {cap} -> trials.num_samples {cap}")
        return {**trials, "num_samples": cap} if isinstance(trials, dict) else trials

    def hyperband(self, value: dict, num_epoch: int) -> AshaSpec:
        """W&B's `early_terminate: {type: hyperband}` as ASHA.

        W&B stops a run at fixed iterations ("brackets"): min_iter, min_iter*eta,
        min_iter*eta^2, ... or, from above, max_iter/eta^s, ..., max_iter/eta. ASHA
        compares trials at grace_period * reduction_factor^k up to max_t = num_epoch:
        the same epochs with grace_period = min_iter (or the lowest of the max_iter
        brackets) and reduction_factor = eta, in one ASHA bracket.
        """
        key = "early_terminate"
        e = self.mapping(value, key, ("type", "min_iter", "max_iter", "eta", "s", "strict"))
        eta = self.number(e.get("eta", 3), f"{key}.eta")  # W&B's default eta is 3
        if eta <= 1:
            self.fail(f"{key}.eta", eta, "must be > 1")
        if ("min_iter" in e) == ("max_iter" in e):
            raise SpaceError(f"{self.path}: {key} has {'both' if 'min_iter' in e else 'neither'} min_iter and "
                             "max_iter, but type hyperband needs exactly one of them")
        notes = []
        if "min_iter" in e:
            grace = self.integer(e["min_iter"], f"{key}.min_iter", 1)
            written = f"min_iter {grace}, eta {_show(eta)}"
            if "s" in e:
                s = self.integer(e["s"], f"{key}.s", 1)
                written += f", s {s}"
                notes.append("s is not used with min_iter: the rungs go up to num_epoch")
        else:
            max_iter = self.integer(e["max_iter"], f"{key}.max_iter", 1)
            if "s" not in e:
                raise SpaceError(f"{self.path}: {key}.s is missing, but type hyperband with max_iter needs s "
                                 "(the number of brackets below max_iter)")
            s = self.integer(e["s"], f"{key}.s", 1)
            grace = int(max_iter / eta ** s)  # W&B's lowest bracket, int() as W&B does
            if grace < 1:
                self.fail(f"{key}.s", s, f"must leave max_iter / eta^s >= 1 (it is {max_iter / eta ** s:.3g})")
            written = f"max_iter {max_iter}, eta {_show(eta)}, s {s}"
            if max_iter != num_epoch:
                notes.append(f"max_iter {max_iter} only places the rungs: every trial's budget is "
                             f"num_epoch = {num_epoch}")
        if "strict" in e:
            notes.append("strict is ignored")
        if grace > num_epoch:
            self.fail(f"{key}.{'min_iter' if 'min_iter' in e else 's'}", e.get("min_iter", e.get("s")),
                      f"gives a first rung at epoch {grace}, after num_epoch ({num_epoch}): ASHA would never "
                      "compare trials")
        source = (f"W&B hyperband ({written}) -> ASHA grace_period {grace}, reduction_factor {_show(eta)}, "
                  f"brackets 1" + (f"; {'; '.join(notes)}" if notes else ""))
        self.notices.append(f"early_terminate: {source}")
        return AshaSpec(grace_period=grace, reduction_factor=eta, max_t=num_epoch, brackets=1, source=source)

    def wandb_alias(self, key: str, alias: str, spec: dict) -> tuple[str, dict]:
        """A W&B distribution as the kind it is, with min/max as values."""
        kind, bounds = WANDB_ALIASES[alias]
        if bounds == "values":
            return kind, spec
        for k in ("min", "max"):
            if k not in spec:
                raise SpaceError(f"{self.path}: {key}.{k} is missing, but distribution {alias} needs min and max "
                                 "(natural-log exponents)")
        lo, hi = self.number(spec["min"], f"{key}.min"), self.number(spec["max"], f"{key}.max")
        if lo >= hi:
            self.fail(f"{key}.min", lo, f"must be < max ({_show(hi)})")
        if max(abs(lo), abs(hi)) > 700:
            self.fail(f"{key}.max" if abs(hi) > 700 else f"{key}.min", hi if abs(hi) > 700 else lo,
                      f"is an exponent for {alias} (the value is e^max): it must be within +-700")
        lo, hi = (math.exp(lo), math.exp(hi)) if bounds == "exp" else (math.exp(-hi), math.exp(-lo))
        return kind, {**spec, "min": _tidy(lo), "max": _tidy(hi)}
