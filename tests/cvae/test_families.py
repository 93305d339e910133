"""The model-family registry: lab4-2024 is today's code, names resolve, a third family registers."""
from __future__ import annotations

import pytest

from cvae.families import (
    DEFAULT_FAMILY,
    SHARED_FIELDS,
    ModelFamily,
    UnknownFamilyError,
    family_names,
    get_family,
    register_family,
    split_model_key,
)
from cvae.families.lab4_2024.config import TrainConfig


def test_default_family_is_lab4_2024_with_todays_config():
    family = get_family()
    assert family.name == DEFAULT_FAMILY == "lab4-2024"
    assert family.config_class is TrainConfig
    assert family.default_config() == TrainConfig()


def test_both_builtin_families_are_listed():
    assert {"lab4-2024", "bair-2023"} <= set(family_names())


def test_every_family_has_the_shared_fields():
    for name in ("lab4-2024", "bair-2023"):
        fields = set(get_family(name).field_names())
        assert set(SHARED_FIELDS) <= fields, (name, set(SHARED_FIELDS) - fields)


def test_unknown_family_is_named():
    with pytest.raises(UnknownFamilyError, match="'nope'.*lab4-2024"):
        get_family("nope")


def test_split_model_key_takes_the_file_key_and_the_override():
    family, rest = split_model_key({"model": "bair-2023", "lr": 0.1})
    assert family.name == "bair-2023" and rest == {"lr": 0.1}
    family, _ = split_model_key({"model": "bair-2023"}, override="lab4-2024")
    assert family.name == "lab4-2024"
    assert split_model_key({})[0].name == "lab4-2024"


def test_a_third_family_is_one_class_and_a_decorator(monkeypatch):
    import cvae.core.registry as registry
    from cvae.families.lab4_2024 import Lab4Family

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # not left registered

    @register_family
    class Toy(Lab4Family):  # every method: a complete family
        name = "toy-test"

    assert get_family("toy-test").name == "toy-test"
    assert "toy-test" in family_names()


def test_a_family_missing_a_method_is_refused_at_registration(monkeypatch):
    import cvae.core.registry as registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with pytest.raises(TypeError, match=r"'half-done' \(HalfDone\) does not implement .*fit.*train_main"):
        @register_family
        class HalfDone(ModelFamily):  # no fit, no data, no CLIs
            name = "half-done"
            config_class = TrainConfig

            def coerce_field(self, key, value, source="config"):
                return value
    assert "half-done" not in family_names()
