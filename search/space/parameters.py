"""The `parameters:` block: each parameter's distribution, values or bounds, `when` and role, checked.

A parameter becomes a SearchParameter of one of the model's kinds (a W&B alias
is translated by search.space.wandb_sweep first); the list comes back in
sampling order, each parameter after those its `when` names.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from cvae.core.config import ConfigError
from search.errors import SpaceError
from search.space.helpers import _did_you_mean, _rule_of, _show, _tidy
from search.space.model import (
    CATEGORICAL,
    CONSTANT,
    INT_UNIFORM,
    LOG_UNIFORM_VALUES,
    Q_LOG_UNIFORM_VALUES,
    Q_UNIFORM,
    UNIFORM,
    SearchParameter,
)
from search.space.wandb_sweep import SUPPORTED_DISTRIBUTIONS, UNSUPPORTED_DISTRIBUTIONS, WANDB_ALIASES, _WandbSweep

PARAM_KEYS = ("values", "value", "distribution", "min", "max", "q", "when", "role")
ROLES = ("scientific", "nuisance")


class _ParameterParser(_WandbSweep):
    """The parser's steps for `parameters:`; every failure names self.path and the parameter's key path."""

    def parameters(self, value: Any, fixed: dict[str, Any], synthetic: str | None) -> list[SearchParameter]:
        if not isinstance(value, dict) or not value:
            self.fail("parameters", value, "must be a mapping with at least one parameter")
        specs: dict[str, SearchParameter] = {}
        raw_when: dict[str, Any] = {}
        for name, spec in value.items():
            specs[name] = self.param(str(name), spec, fixed, synthetic)
            raw_when[name] = spec.get("when")
        for name, when in raw_when.items():
            if when is not None:
                specs[name] = dataclasses.replace(specs[name], when=self.when(name, when, specs, fixed))
        return self.dependency_order(specs)

    def param(self, name: str, spec: Any, fixed: dict[str, Any], synthetic: str | None) -> SearchParameter:
        key = f"parameters.{name}"
        self.known_field(name, key)
        if name == "num_epoch":
            raise SpaceError(f"{self.path}: {key} is searched, but num_epoch is every trial's budget "
                             "and ASHA's max_t: put it under fixed")
        if name in fixed:
            raise SpaceError(f"{self.path}: {key} is searched, but it is also fixed (fixed.{name} = "
                             f"{_show(fixed[name])}); a field is either fixed or searched")
        if not isinstance(spec, dict):
            self.fail(key, spec, "must be a mapping such as {values: [...]} (to fix a value, "
                                 "write {value: ...} or put it under fixed)")
        if spec.get("distribution") in UNSUPPORTED_DISTRIBUTIONS:
            self.fail(f"{key}.distribution", spec["distribution"],
                      "Optuna cannot draw it (unbounded or weighted); supported: "
                      f"{', '.join(SUPPORTED_DISTRIBUTIONS)}")
        self.mapping(spec, key, PARAM_KEYS)
        kind = self.kind(key, spec)
        wandb = None
        if kind in WANDB_ALIASES:
            wandb, (kind, spec) = kind, self.wandb_alias(key, kind, spec)
        ftype = self.family.field_type(name)
        role = self.choice(spec.get("role", "nuisance"), f"{key}.role", ROLES)
        extra = {CATEGORICAL: ("values",), CONSTANT: ("value",)}.get(kind, ("min", "max"))
        extra += ("q",) if kind in (Q_UNIFORM, Q_LOG_UNIFORM_VALUES) else ()
        for k in ("values", "value", "min", "max", "q"):
            if k in spec and k not in extra:
                self.fail(f"{key}.{k}", spec[k], f"{k} does not apply to distribution {kind}")
        for k in extra:
            if k not in spec and k != "q":
                raise SpaceError(f"{self.path}: {key}.{k} is missing, but distribution {kind} needs {list(extra)}")
        if kind == CATEGORICAL:
            choices = self.categorical(name, key, spec["values"], ftype, fixed, synthetic)
            return SearchParameter(name=name, kind=kind, field_type=ftype, choices=choices, role=role)
        if kind == CONSTANT:
            if ftype == "list[int]":
                self.fail(key, spec["value"], f"{name} is a list field: put it under fixed")
            choice = self.field_value(name, spec["value"], f"{key}.value", fixed)
            self.check_length(synthetic, name, choice, f"{key}.value")
            return SearchParameter(name=name, kind=kind, field_type=ftype, choices=(choice,), role=role)
        param = self.numeric(name, key, kind, spec, ftype, fixed, role)
        self.check_length(synthetic, name, param.high, f"{key}.max")
        return dataclasses.replace(param, wandb=wandb) if wandb else param

    def kind(self, key: str, spec: dict) -> str:
        kind = spec.get("distribution")
        if kind is None:  # W&B's inference
            if "values" in spec:
                return CATEGORICAL
            if "value" in spec:
                return CONSTANT
            if "min" in spec and "max" in spec:
                ints = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max"))
                return INT_UNIFORM if ints else UNIFORM
            raise SpaceError(f"{self.path}: {key} has no values, value or min/max, but a parameter needs "
                             "values (categorical), value (constant) or min and max (a range)")
        return self.choice(kind, f"{key}.distribution", SUPPORTED_DISTRIBUTIONS)

    def categorical(self, name: str, key: str, values: Any, ftype: str, fixed: dict,
                    synthetic: str | None) -> tuple[Any, ...]:
        if not isinstance(values, list) or not values:
            self.fail(f"{key}.values", values, "must be a non-empty list")
        if ftype == "list[int]":
            # Optuna's categorical choices must be scalars.
            self.fail(f"{key}.values", values, f"{name} is a list field and cannot be searched: put it under fixed")
        choices: list[Any] = []
        for i, v in enumerate(values):
            c = self.field_value(name, v, f"{key}.values[{i}]", fixed)
            self.check_length(synthetic, name, c, f"{key}.values[{i}]")
            if any(c == seen and type(c) is type(seen) for seen in choices):
                self.fail(f"{key}.values[{i}]", v, f"each value may appear once ({c!r} is already listed)")
            choices.append(c)
        return tuple(choices)

    def numeric(self, name: str, key: str, kind: str, spec: dict, ftype: str, fixed: dict,
                role: str) -> SearchParameter:
        if ftype not in ("int", "float"):
            self.fail(f"{key}.distribution", kind, f"{name} is a {ftype} field: list its choices under values")
        lo = self.number(spec["min"], f"{key}.min")
        hi = self.number(spec["max"], f"{key}.max")
        if kind == INT_UNIFORM:
            lo, hi = self.integer(lo, f"{key}.min", -2**62), self.integer(hi, f"{key}.max", -2**62)
        if ftype == "int" and kind in (UNIFORM, LOG_UNIFORM_VALUES):
            self.fail(f"{key}.distribution", kind, f"{name} is an integer field: use int_uniform, "
                                                    "q_uniform or q_log_uniform_values")
        if lo >= hi:
            self.fail(f"{key}.min", lo, f"must be < max ({_show(hi)})")
        log = kind in (LOG_UNIFORM_VALUES, Q_LOG_UNIFORM_VALUES)
        if log and lo <= 0:
            self.fail(f"{key}.min", lo, f"must be > 0 for {kind}")
        q = None
        if kind in (Q_UNIFORM, Q_LOG_UNIFORM_VALUES):
            q = self.number(spec.get("q", 1), f"{key}.q")  # W&B's default q is 1
            if q <= 0:
                self.fail(f"{key}.q", q, "must be > 0")
            if ftype == "int":
                if not float(q).is_integer():
                    self.fail(f"{key}.q", q, f"must be a whole number: {name} is an integer field")
                q = int(q)
            lo, hi = self.grid_ends(key, lo, hi, q)
            if lo == hi:
                self.fail(f"{key}.q", q, f"leaves one multiple of q ({_show(lo)}) in [min, max], so nothing is searched")
        lo = self.field_value(name, lo, f"{key}.min", fixed)
        hi = self.field_value(name, hi, f"{key}.max", fixed)
        return SearchParameter(name=name, kind=kind, field_type=ftype, low=lo, high=hi, q=q, log=log, role=role)

    def grid_ends(self, key: str, lo: float, hi: float, q: float) -> tuple[float, float]:
        """First and last multiple of q inside [lo, hi] (with float slack: 0.3 / 0.1 = 2.9999999999999996)."""
        first = _tidy(math.ceil(lo / q - 1e-9) * q)
        last = _tidy(math.floor(hi / q + 1e-9) * q)
        if first > last:
            self.fail(f"{key}.q", q, f"has no multiple inside [min, max] = [{_show(lo)}, {_show(hi)}]")
        return first, last

    def when(self, name: str, when: Any, specs: dict[str, SearchParameter], fixed: dict) -> dict[str, tuple]:
        key = f"parameters.{name}.when"
        if not isinstance(when, dict) or not when:
            self.fail(key, when, "must be a mapping {other_parameter: value or [values]}")
        resolved: dict[str, tuple] = {}
        for dep, wanted in when.items():
            dkey = f"{key}.{dep}"
            if dep == name:
                self.fail(dkey, wanted, "a parameter cannot depend on itself")
            if dep not in specs:
                if dep in fixed:
                    rule = f"{dep} is fixed, not searched, so the condition is always decided: drop it"
                else:
                    rule = f"when must name a searched parameter{_did_you_mean(str(dep), tuple(specs))}"
                raise SpaceError(f"{self.path}: {dkey} names no parameter in parameters, but {rule}")
            target = specs[dep]
            if target.kind not in (CATEGORICAL, CONSTANT) and target.field_type != "int":
                self.fail(dkey, wanted, f"{dep} is continuous ({target.kind}): a condition needs a "
                                        "categorical or integer parameter")
            wanted_list = wanted if isinstance(wanted, list) else [wanted]
            if not wanted_list:
                self.fail(dkey, wanted, "must list at least one value")
            values: list[Any] = []
            for v in wanted_list:
                try:
                    c = self.family.coerce_field(dep, v, source="")
                except ConfigError as err:
                    self.fail(dkey, v, _rule_of(err))
                c = self.family.canonical_value(dep, c)
                if not target.can_take(c):
                    self.fail(dkey, v, f"{dep} never takes it ({target.distribution_text()})")
                values.append(c)
            resolved[dep] = tuple(values)
        return resolved

    def dependency_order(self, specs: dict[str, SearchParameter]) -> list[SearchParameter]:
        """File order, except that a parameter follows every parameter its `when` names."""
        ordered: list[SearchParameter] = []
        placed: set[str] = set()
        pending = list(specs.values())
        while pending:
            ready = next((p for p in pending if set(p.when) <= placed), None)
            if ready is None:
                names = ", ".join(p.name for p in pending)
                raise SpaceError(f"{self.path}: parameters.{pending[0].name}.when is "
                                 f"{pending[0].when_text()}, but the conditions of {names} form a "
                                 "cycle: each waits for another")
            ordered.append(ready)
            placed.add(ready.name)
            pending.remove(ready)
        return ordered
