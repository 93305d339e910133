"""The dry-run text of a search space: what `run_search.py --dry-run` prints about it.

`DryRunText` is mixed into SearchSpace (search.space.model), so `space.describe()`
is called as before. It reads the space's fields and asks the space for its
strata, earliest stops and re-evaluation seeds; it imports nothing of the model,
which imports it.
"""
from __future__ import annotations

from typing import Any, Mapping

from cvae.core.schedules import describe_kl
from search.space.helpers import _show


class DryRunText:
    """The plan text of a SearchSpace: describe() and the parts of its lines."""

    def describe(self) -> str:
        """The resolved space and plan, for --dry-run."""
        lines = [f"search space '{self.name}' ({self.path})"]
        if self.description:
            lines.append(f"  {self.description.strip()}")
        lines += [
            f"  model:    {self.model} ({self.family.description})",
            f"  metric:   {self.metric} ({'maximize' if self.mode == 'max' else 'minimize'})",
            f"  data:     {self.data_root}" + (f" (synthetic preset '{self.synthetic}' generated if missing)"
                                               if self.synthetic else " (must exist; not generated)"),
            f"  trials:   {self.num_samples} samples, {self._concurrency_text()}, "
            f"{_show(self.cpu)} CPU + {_show(self.gpu)} GPU each, "
            f"retried up to {self.max_failures} times on failure, checkpoint every {self.checkpoint_every} epoch(s)",
            f"  sampler:  {self._sampler_text()}",
            f"  stopping: {self._asha_text()}",
            f"  strata:   {self._strata_text()}",
            f"  reeval:   {self._reeval_text()}",
            f"  budget:   at most {self.num_samples} x {self.num_epoch} = {self.num_samples * self.num_epoch} epochs"
            + (f" + {self.max_reeval_trials} x {self.num_epoch} re-evaluation epochs" if self.reeval_seeds else ""),
        ]
        strata = self.strata()
        lines.append(f"strata ({len(strata)}; scientific: {', '.join(self.scientific_parameters()) or 'none'}):")
        for stratum in strata:
            stop = self.earliest_stop(stratum)
            when = ("never stopped early" if stop is None else
                    f"stopped no earlier than epoch {stop[0]}" if stop[0] == stop[1] else
                    f"stopped no earlier than epoch {stop[0]}..{stop[1]} (by its KL schedule)")
            lines.append(f"  {stratum.key}: {when}")
            kl = self._kl_words(stratum.values)
            if kl:
                lines.append(f"    beta: {kl}")
        lines.append(f"parameters (sampling order; {len(self.parameters)} searched):")
        width = max(len(p.name) for p in self.parameters)
        for p in self.parameters:
            cond = f"  when {p.when_text()}" if p.when else ""
            lines.append(f"  {p.name:<{width}}  {p.role:<10}  {p.distribution_text()}{cond}")
        lines.append(f"fixed ({len(self.fixed)}; every other {type(self.family.default_config()).__name__} field keeps its default):")
        for key, value in self.fixed.items():
            lines.append(f"  {key} = {_show(value)}")
        if self.notices:
            lines.append("W&B sweep keys:")
            lines += [f"  {n}" for n in self.notices]
        return "\n".join(lines)

    def _concurrency_text(self) -> str:
        if self.max_concurrent is None:
            return "as many at a time as the cluster's CPUs/GPUs allow"
        return f"{self.max_concurrent} at a time"

    def _sampler_text(self) -> str:
        s = self.sampler
        parts = [f"seed {s.seed}" if s.seed is not None else "unseeded"]
        if s.type == "tpe":
            startup = s.n_startup_trials if s.n_startup_trials is not None else "Optuna's default 10"
            parts.append(f"multivariate, group, {startup} random startup trials"
                         + (" per stratum" if self.strata_mode == "balanced" else ""))
        if s.type == "grid":
            parts.append(f"every combination once: {self.grid_size()} trials")
        return f"{s.type} ({', '.join(parts)})"

    def _strata_text(self) -> str:
        n = len(self.strata())
        if self.sampler.type == "grid":
            return f"the grid: each of the {n} strata gets the trials of its combinations"
        if self.strata_mode == "balanced":
            return (f"balanced: trials handed out round-robin over {n} strata "
                    f"(~{self.num_samples / n:.1f} each), nuisance parameters tuned within each")
        return f"free: the sampler decides how many trials each of the {n} strata gets"

    def _reeval_text(self) -> str:
        if not self.reeval_seeds:
            return "off"
        unit = " dB" if self.metric.endswith("psnr") else ""
        equivalent = (f"strategies within ±{self.reeval_equivalence:g}{unit} of each other (90% interval) are "
                      "called equivalent")
        if self.reeval_racing:
            budget = ("" if self.reeval_budget_epochs is None
                      else f", {self.reeval_budget_epochs} re-run epochs in all")
            return (f"racing: each stratum's best configuration re-run with {self.reeval_seeds} seeds after the "
                    f"search, then one more seed per round for each stratum still in contention with the leader, "
                    f"until the verdict is decisive or equivalent or the budget is spent (at most "
                    f"{self.reeval_max_seeds} seeds a stratum{budget}: up to {self.max_reeval_trials} runs); "
                    f"{equivalent}")
        seeds = ", ".join(str(self.reeval_seed(i)) for i in range(1, self.reeval_seeds + 1))
        return (f"each stratum's best configuration re-run at full budget with {self.reeval_seeds} more "
                f"seeds ({seeds}) after the search: up to {self.max_reeval_trials} runs; {equivalent}")

    def _asha_text(self) -> str:
        if self.asha is None:
            return f"none (every trial runs all {self.num_epoch} epochs)"
        a = self.asha
        rungs = ", ".join(_show(r) for r in a.rungs())
        brackets = f", {a.brackets} brackets" if a.brackets > 1 else ""
        source = f" [{a.source}]" if a.source else ""
        return (f"ASHA per stratum, grace period {a.grace_period}, reduction factor {_show(a.reduction_factor)}, "
                f"max_t {a.max_t} (num_epoch){brackets}: trials compared at epochs {rungs}, "
                f"a trial judged only where its KL term has full weight (after the ramp; Cyclical at the end "
                f"of a cycle){source}")

    def _kl_words(self, stratum_values: Mapping[str, Any]) -> str | None:
        """A stratum's beta schedule in words, over the ranges its trials can draw;
        None for a family without KL annealing fields."""
        defaults = self.family.default_config()
        if not all(hasattr(defaults, f) for f in ("kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio")):
            return None

        def span(name: str) -> Any:
            if name in stratum_values:
                return stratum_values[name]
            if name in self.fixed:
                return self.fixed[name]
            spec = next((p for p in self.parameters if p.name == name), None)
            if spec is None:
                return getattr(defaults, name)
            values = list(spec.choices) if spec.choices is not None else [spec.low, spec.high]
            return values[0] if len(values) == 1 else (min(values), max(values))

        kinds = span("kl_anneal_type")
        if isinstance(kinds, tuple):  # KL type searched but not scientific: one line would mislead
            return "depends on the sampled kl_anneal_type"
        return describe_kl(kind=kinds, num_epoch=self.num_epoch, cycle=span("kl_anneal_cycle"),
                           ratio=span("kl_anneal_ratio"))
