"""The space YAML's `model:` key: the family's config checks every fixed and searched name."""
from __future__ import annotations

from pathlib import Path

import pytest

from search.errors import SpaceError
from search.space import load_space

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


BASE = """name: t
data: {root: data/x}
"""


def test_default_model_is_lab4_2024(tmp_path):
    space = load_space(write(tmp_path, BASE + "parameters: {lr: {values: [0.001, 0.002]}}\n"))
    assert space.model == "lab4-2024"
    assert type(space.train_config({})).__name__ == "TrainConfig"


def test_bair_space_builds_bair_configs(tmp_path):
    space = load_space(write(tmp_path, "model: bair-2023\n" + BASE + "fixed: {n_future: 4, width: 0.25}\n"
                             "parameters: {kl_anneal_type: {values: [Cyclical, Monotonic], role: scientific}}\n"))
    cfg = space.train_config({"kl_anneal_type": "Cyclical"})
    assert type(cfg).__name__ == "BairConfig" and cfg.n_future == 4 and cfg.kl_anneal_type == "Cyclical"
    assert space.num_epoch == 300  # the template's niter when not fixed
    assert "model:    bair-2023" in space.describe()


def test_bair_space_rejects_a_lab4_only_field_by_name(tmp_path):
    path = write(tmp_path, "model: bair-2023\n" + BASE + "fixed: {F_dim: 64}\nparameters: {lr: {values: [0.1, 0.2]}}\n")
    with pytest.raises(SpaceError, match="fixed.F_dim is not a BairConfig field"):
        load_space(path)
    path = write(tmp_path, "model: bair-2023\n" + BASE + "parameters: {train_vi_len: {values: [4, 8]}}\n")
    with pytest.raises(SpaceError, match="parameters.train_vi_len is not a BairConfig field"):
        load_space(path)


def test_lab4_space_rejects_a_bair_only_field_by_name(tmp_path):
    path = write(tmp_path, BASE + "fixed: {n_past: 2}\nparameters: {lr: {values: [0.1, 0.2]}}\n")
    with pytest.raises(SpaceError, match="fixed.n_past is not a TrainConfig field"):
        load_space(path)
    path = write(tmp_path, "model: lab4-2024\n" + BASE + "parameters: {g_dim: {values: [64, 128]}}\n")
    with pytest.raises(SpaceError, match="parameters.g_dim is not a TrainConfig field"):
        load_space(path)


def test_unknown_model_is_named(tmp_path):
    with pytest.raises(SpaceError, match="model is 'bair-2024', but must be one of .*did you mean 'bair-2023'"):
        load_space(write(tmp_path, "model: bair-2024\n" + BASE + "parameters: {lr: {values: [0.1, 0.2]}}\n"))


def test_bair_synthetic_presets_belong_to_the_bair_family(tmp_path):
    text = "name: t\nmodel: bair-2023\ndata: {root: data/x, synthetic: small}\nparameters: {lr: {values: [0.1, 0.2]}}\n"
    with pytest.raises(SpaceError, match="data.synthetic is 'small', but must be one of \\['bair-small', 'bair-lab'\\]"):
        load_space(write(tmp_path, text))


def test_run_search_refuses_broken_bair_data_before_ray_starts(tmp_path, capsys):
    """A missing CSV in the processed BAIR layout: exit 2 naming the file, no run folder made."""
    import run_search
    from cvae.families.bair_2023.synthetic import BairPreset, generate

    root = generate(tmp_path / "broken", BairPreset(2, 1, 1, 2), seed=0, progress=False)
    missing = next((root / "validate").glob("*/0")) / "actions.csv"
    missing.unlink()
    code = run_search.main(["--space", str(REPO / "spaces" / "bair-quick.yaml"), "--data", str(root),
                            "--storage-path", str(tmp_path / "runs")])
    assert code == 2
    assert f"{missing}: file missing" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
