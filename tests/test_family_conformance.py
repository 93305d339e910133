"""Every registered model family passes the same checks: it fits a tiny model, a
resumed run equals a straight one, its predict CLI writes its files, its data
errors name the folder, and one real Ray trial runs through the search.

A family is added to CASES with its tiny data and config; a registered family
without a case fails `test_every_registered_family_has_a_case`, so a third family
is checked the day it registers."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import yaml

from cvae.core.images import DataError
from cvae.core.training import METRIC_KEYS
from cvae.families import family_names, get_family


def _lab4_data(root: Path) -> Path:
    from cvae.families.lab4_2024.synthetic import Preset, generate

    return generate(root, Preset(train_video_lengths=(8,), val_length=6, test_sequences=1, test_length=4),
                    seed=1, progress=False)


def _bair_data(root: Path) -> Path:
    from cvae.families.bair_2023.synthetic import BairPreset, generate

    return generate(root, BairPreset(train_sequences=3, validate_sequences=2, test_sequences=2, per_folder=2),
                    seed=1, progress=False)


@dataclass(frozen=True)
class Case:
    make_data: Callable[[Path], Path]
    config: dict[str, Any]       # tiny fields, 3 epochs
    predicted_files: str         # a glob of what predict_main writes


CASES = {
    "lab4-2024": Case(_lab4_data, dict(F_dim=16, L_dim=8, N_dim=4, D_out_dim=16, frame_H=8, frame_W=16,
                                       train_vi_len=4, val_vi_len=6, batch_size=2, num_epoch=3, milestones=[10],
                                       precision="fp32", channels_last=False, output_activation="sigmoid",
                                       leaky_slope=0.01, shuffle=True, device="cpu", lr=1e-3), "pred_seq*.gif"),
    "bair-2023": Case(_bair_data, dict(width=0.0625, g_dim=8, z_dim=2, rnn_size=8, batch_size=2, epoch_size=2,
                                       num_epoch=3, n_past=2, n_future=3, val_every=1, device="cpu", lr=1e-3),
                      "seq*.gif"),
}
FAMILIES = sorted(CASES)


def test_every_registered_family_has_a_case():
    assert sorted(family_names()) == FAMILIES


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict[str, tuple[Path, Any, Any]]:
    """family name -> (data root, config, loaded data)."""
    out = {}
    for name in FAMILIES:
        family, case = get_family(name), CASES[name]
        root = case.make_data(tmp_path_factory.mktemp(name) / "data")
        cfg = family.config_from_dict(case.config, source=f"CASES[{name}]")
        out[name] = (root, cfg, family.load_data(root, cfg, progress=False))
    return out


def _without_times(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.endswith("_time_s")}


@pytest.mark.parametrize("name", FAMILIES)
def test_fit_trains_to_the_last_epoch_with_the_contract_metrics(name, prepared):
    family = get_family(name)
    _, cfg, data = prepared[name]
    family.check_data(cfg, data, where="test")
    seen: list[dict] = []
    trainer = family.fit(cfg, data, on_epoch=lambda m, t: seen.append(m))
    assert trainer.epoch == cfg.num_epoch and not trainer.diverged
    assert [m["epoch"] for m in seen] == [1, 2, 3]
    assert all(set(METRIC_KEYS) <= set(m) for m in seen)
    assert all(math.isfinite(m["val_psnr"]) and m["val_psnr"] > 0 for m in seen if m["validated"])
    baseline = family.baseline_psnr(data, cfg)
    assert baseline is not None and 0 < baseline < 100


@pytest.mark.parametrize("name", FAMILIES)
def test_a_resumed_run_equals_a_straight_one(name, prepared, tmp_path):
    family = get_family(name)
    _, cfg, data = prepared[name]
    straight: list[dict] = []
    full = family.fit(cfg, data, on_epoch=lambda m, t: straight.append(_without_times(m)))
    first: list[dict] = []
    part = family.fit(cfg.replace(num_epoch=1), data, on_epoch=lambda m, t: first.append(_without_times(m)))
    part.save_checkpoint(tmp_path / "split.pt")
    torch.manual_seed(12345)  # the resumed run must restore its own random state
    rest: list[dict] = []
    resumed = family.fit(cfg, data, on_epoch=lambda m, t: rest.append(_without_times(m)),
                         resume_from=tmp_path / "split.pt")
    assert first + rest == straight
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


@pytest.mark.parametrize("name", FAMILIES)
def test_predict_writes_its_files_from_a_checkpoint(name, prepared, tmp_path):
    family = get_family(name)
    root, cfg, data = prepared[name]
    family.fit(cfg.replace(num_epoch=1), data).save_checkpoint(tmp_path / "last.pt")
    code = family.predict_main(["--checkpoint", str(tmp_path / "last.pt"), "--data", str(root),
                                "--out", str(tmp_path / "pred"), "--device", "cpu"])
    assert code == 0
    assert list((tmp_path / "pred").glob(CASES[name].predicted_files))


@pytest.mark.parametrize("name", FAMILIES)
def test_a_missing_data_folder_is_a_data_error_naming_it(name, prepared, tmp_path):
    family = get_family(name)
    _, cfg, _ = prepared[name]
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        family.load_data(tmp_path / "nowhere", cfg, progress=False)


@pytest.mark.parametrize("name", FAMILIES)
def test_a_config_typo_is_refused_naming_the_closest_field(name):
    family = get_family(name)
    with pytest.raises(ValueError, match="did you mean 'num_epoch'"):
        family.config_from_dict({"num_epochs": 3}, source="typo.yaml")


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_one_real_ray_trial_runs_through_the_search(name, prepared, tmp_path):
    pytest.importorskip("ray")
    import ray

    from runfolder.contract import read_trials_csv
    from search.runner import make_plan, prepare_data, run_search

    root, _, _ = prepared[name]
    space = {"name": f"conformance-{name}", "model": name, "data": {"root": str(root)},
             "trials": {"num_samples": 1, "max_concurrent": 1, "resources": {"cpu": 1, "gpu": 0}},
             "sampler": {"type": "random", "seed": 0}, "reeval": {"seeds": 0},
             "fixed": {k: v for k, v in CASES[name].config.items() if k not in ("lr", "device")},
             "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 2e-3}}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    plan = make_plan(tmp_path / "space.yaml", storage_path=tmp_path / "runs")
    data = prepare_data(plan, progress=False)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        outcome = run_search(plan, data)
    finally:
        ray.shutdown()
    assert outcome.status_counts.get("completed") == 1, outcome.status_counts
    rows = read_trials_csv(plan.run_dir)
    assert sorted(int(r["epoch"]) for r in rows) == [1, 2, 3]
    assert yaml.safe_load(outcome.best_yaml.read_text())["model"] == name
