"""BAIR layout loader and synthetic generator (cvae.families.bair_2023.data, cvae.families.bair_2023.synthetic): a tiny
generated set loads; every rejected input is a DataError naming the folder or file."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvae.families.bair_2023.data import load_bair_data, load_bair_split, sequence_folders
from cvae.families.bair_2023.synthetic import BairPreset, SyntheticError, generate, sequence
from cvae.families.lab4_2024.data import DataError
from cvae.synthetic import main as synthetic_main

TINY = BairPreset(train_sequences=3, validate_sequences=2, test_sequences=2, per_folder=2)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("bair") / "tiny", TINY, seed=3, progress=False)


@pytest.fixture
def root(tiny_root, tmp_path) -> Path:
    """A private copy to break."""
    return Path(shutil.copytree(tiny_root, tmp_path / "copy"))


def first_seq(root: Path, split: str = "train") -> Path:
    return sequence_folders(root, split)[0]


def test_layout_and_shapes(tiny_root):
    folders = sequence_folders(tiny_root, "train")
    assert [f.parent.name for f in folders] == ["traj_4_to_5.tfrecords"] * 2 + ["traj_6_to_6.tfrecords"]
    frames, cond, _ = load_bair_split(tiny_root, "train", frames=12)
    assert frames.shape == (3, 12, 3, 64, 64) and frames.dtype == torch.uint8
    assert cond.shape == (3, 12, 7) and cond.dtype == torch.float32
    data = load_bair_data(tiny_root, 12, progress=False)
    assert data.val_frames.shape == (2, 12, 3, 64, 64)


def test_condition_is_action_then_position_and_consistent(tiny_root):
    _, cond, _ = load_bair_split(tiny_root, "train", frames=30)
    actions, positions = cond[0, :, :4], cond[0, :, 4:]
    # the action's move is the position's next step (to the CSV's 6 decimals)
    assert torch.allclose(actions[:-1, :3], positions[1:] - positions[:-1], atol=2e-5)
    assert set(actions[:, 3].tolist()) <= {-1.0, 1.0}


def test_generator_is_deterministic_from_the_seed():
    a = sequence(np.random.default_rng([5, 0, 1]))
    b = sequence(np.random.default_rng([5, 0, 1]))
    c = sequence(np.random.default_rng([6, 0, 1]))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_generated_sets_are_reproducible(tiny_root, tmp_path):
    again = generate(tmp_path / "again", TINY, seed=3, progress=False, workers=2)
    for split in ("train", "validate", "test"):
        x1, c1, _ = load_bair_split(tiny_root, split)
        x2, c2, _ = load_bair_split(again, split)
        assert torch.equal(x1, x2) and torch.equal(c1, c2)


def test_synthetic_cli_bair_preset_shows_progress(tmp_path, capsys, monkeypatch):
    import cvae.families.bair_2023.synthetic as bs

    monkeypatch.setitem(bs.PRESETS, "bair-small", TINY)
    assert synthetic_main(["--preset", "bair-small", "--out", str(tmp_path / "b")]) == 0
    captured = capsys.readouterr()
    assert "synthetic bair-small" in captured.err and "100%" in captured.err
    assert len(sequence_folders(tmp_path / "b", "test")) == 2


def test_dance_presets_still_need_out():
    with pytest.raises(SystemExit):
        synthetic_main(["--preset", "small"])


def test_unknown_preset_is_refused(tmp_path):
    with pytest.raises(SyntheticError, match="bair-small"):
        generate(tmp_path / "x", "bair-huge")


# --- rejected inputs: one test each -------------------------------------------------------
def test_missing_root(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path / 'nope'}: data folder does not exist"):
        load_bair_split(tmp_path / "nope", "train")


def test_missing_split_folder(root):
    shutil.rmtree(root / "validate")
    with pytest.raises(DataError, match=f"{root / 'validate'}: folder missing"):
        load_bair_data(root, 12, progress=False)


def test_empty_trajectory_folder(root):
    traj = first_seq(root).parent
    shutil.rmtree(traj)
    traj.mkdir()
    with pytest.raises(DataError, match=f"{traj}: no sequence folders"):
        load_bair_split(root, "train")


def test_missing_csv(root):
    seq = first_seq(root)
    (seq / "actions.csv").unlink()
    with pytest.raises(DataError, match=f"{seq / 'actions.csv'}: file missing"):
        load_bair_split(root, "train")


def test_wrong_row_count(root):
    seq = first_seq(root)
    path = seq / "endeffector_positions.csv"
    path.write_text("\n".join(path.read_text().splitlines()[:29]) + "\n")
    with pytest.raises(DataError, match=f"{path}: has 29 rows, but must have 30"):
        load_bair_split(root, "train")


def test_extra_rows_are_ignored_with_one_warning(root, capsys):
    seq = first_seq(root)
    path = seq / "actions.csv"
    before = load_bair_split(root, "train")[1]
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + ["9,9,9,9"]) + "\n")  # 31 rows, as some copies of the data have
    frames, cond, _ = load_bair_split(root, "train")
    assert torch.equal(cond, before)
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and f"{path}: 31 rows; the 1 after row 30 are ignored" in err


def test_extra_frames_are_ignored_with_one_warning(root, capsys):
    seq = first_seq(root)
    before = load_bair_split(root, "train")[0]
    Image.new("RGB", (64, 64)).save(seq / "30.png")
    Image.new("RGB", (64, 64)).save(seq / "31.png")
    assert torch.equal(load_bair_split(root, "train")[0], before)
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and f"{seq}: 2 frame(s) past 29.png ignored (first: 30.png)" in err


def test_a_wrong_sized_frame_is_refused_even_past_the_decoded_ones(root):
    seq = first_seq(root)
    Image.new("RGB", (32, 32)).save(seq / "25.png")
    with pytest.raises(DataError, match=f"{seq / '25.png'}: image is 32x32 .*must be 64x64"):
        load_bair_split(root, "train", frames=12)


def test_wrong_column_count(root):
    seq = first_seq(root)
    path = seq / "actions.csv"
    lines = path.read_text().splitlines()
    lines[4] = "1,2,3"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=f"{path}: row 5 has 3 values, but must have 4"):
        load_bair_split(root, "train")


def test_non_numeric_csv(root):
    seq = first_seq(root)
    path = seq / "actions.csv"
    lines = path.read_text().splitlines()
    lines[0] = "a,b,c,d"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=f"{path}: row 1 is 'a,b,c,d', but must hold 4 numbers"):
        load_bair_split(root, "train")


def test_wrong_image_size(root):
    seq = first_seq(root)
    Image.new("RGB", (32, 32)).save(seq / "3.png")
    with pytest.raises(DataError, match=f"{seq / '3.png'}: image is 32x32 .*must be 64x64"):
        load_bair_split(root, "train")


def test_sequence_with_missing_frames(root):
    seq = first_seq(root)
    (seq / "17.png").unlink()
    (seq / "29.png").unlink()
    with pytest.raises(DataError, match=f"{seq}: sequence has missing frames: 17.png and 1 more"):
        load_bair_split(root, "train", frames=12)  # checked even beyond the frames decoded


def test_undecodable_frame(root):
    seq = first_seq(root)
    (seq / "0.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=f"{seq / '0.png'}: cannot decode"):
        load_bair_split(root, "train")
