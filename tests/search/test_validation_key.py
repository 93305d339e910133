"""`validation: {samples: K}` in a space (issue 21, item 4): K prior draws per validation."""
from __future__ import annotations

import pytest

from search.space import load_space
from tests.search.test_study_design import rejects, space_file


def test_validation_samples_becomes_the_fixed_field_and_reaches_the_trials(tmp_path):
    space = load_space(space_file(tmp_path, lambda d: d.update(validation={"samples": 4})))
    assert space.fixed["val_samples"] == 4
    assert space.train_config({}).val_samples == 4
    assert load_space(space_file(tmp_path)).train_config({}).val_samples == 1  # the template's one draw


@pytest.mark.parametrize("edit, key, rule", [
    (lambda d: d.update(validation={"samples": 0}), "validation.samples", "must be >= 1"),
    (lambda d: d.update(validation={"draws": 4}), "validation", "draws"),
    (lambda d: (d.update(validation={"samples": 2}), d["fixed"].update(val_samples=2)),
     "validation.samples", "is fixed.val_samples too"),
    (lambda d: d.update(model="bair-2023", validation={"samples": 2}, fixed={"num_epoch": 2},
                        data={"root": "data/b", "synthetic": "bair-small"},
                        parameters={"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2}}),
     "validation.samples", "is not an option of the bair-2023 family"),
])
def test_a_bad_validation_block_names_the_key(tmp_path, edit, key, rule):
    rejects(tmp_path, edit, key, rule)
