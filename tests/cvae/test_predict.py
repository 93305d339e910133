"""Test-set prediction: GIFs and the Lab4 Kaggle submission.csv from a tiny checkpoint."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cvae.families.lab4_2024.config import TrainConfig
from cvae.families.lab4_2024.data import LabData, load_test_sequences
from cvae.families.lab4_2024.predict import to_uint8
from cvae.families.lab4_2024.synthetic import Preset, generate
from cvae.families.lab4_2024.train import Trainer
from cvae.predict import main

torch.set_num_threads(1)

H, W, T, SEQS = 8, 16, 5, 2


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("predict")
    root = generate(tmp / "syn", Preset(train_video_lengths=(4,), val_length=4, test_sequences=SEQS, test_length=T),
                    seed=1, progress=False)
    g = torch.Generator().manual_seed(0)
    data = LabData(*(torch.randint(0, 256, (8, 3, H, W), dtype=torch.uint8, generator=g) for _ in range(4)))
    cfg = TrainConfig(F_dim=16, L_dim=8, N_dim=4, D_out_dim=16, frame_H=H, frame_W=W, train_vi_len=4,
                      val_vi_len=4, num_epoch=1, precision="fp32", channels_last=False)
    trainer = Trainer(cfg, data)
    trainer.run_epoch()
    trainer.save_checkpoint(tmp / "tiny.pt")
    return tmp / "tiny.pt", root


def test_writes_gifs_and_kaggle_submission(setup, tmp_path: Path) -> None:
    ckpt, root = setup
    assert main(["--checkpoint", str(ckpt), "--data", str(root), "--out", str(tmp_path), "--device", "cpu"]) == 0
    df = pd.read_csv(tmp_path / "submission.csv")
    assert list(df.columns) == ["id"] + [str(i) for i in range(3 * H * W)]
    assert len(df) == SEQS * T and df["id"].tolist() == list(range(SEQS * T))
    values = df.drop(columns="id").to_numpy()
    assert values.dtype == np.int64 and values.min() >= 0 and values.max() <= 255
    # row 0 of each sequence is its given first frame, flattened in (C, H, W) order
    sequences = load_test_sequences(root, H, W)
    for s, (first, _) in enumerate(sequences):
        np.testing.assert_array_equal(values[s * T], first.reshape(-1).numpy())
    for s in range(SEQS):
        gif = Image.open(tmp_path / f"pred_seq{s}.gif")
        assert gif.n_frames == T and gif.size == (W, H)


def test_same_seed_same_submission_other_seed_differs(setup, tmp_path: Path) -> None:
    ckpt, root = setup
    for name, seed in (("a", "0"), ("b", "0"), ("c", "7")):
        assert main(["--checkpoint", str(ckpt), "--data", str(root), "--out", str(tmp_path / name),
                     "--device", "cpu", "--seed", seed]) == 0
    a, b, c = ((tmp_path / n / "submission.csv").read_text() for n in "abc")
    assert a == b and a != c


def test_to_uint8_rounds_half_to_even_and_clips() -> None:
    x = torch.tensor([-0.1, 0.5 / 255, 1.5 / 255, 0.999, 1.2])
    assert to_uint8(x).tolist() == [0, 0, 2, 255, 255]


def test_bad_checkpoint_or_data_exit_2(setup, tmp_path: Path, capsys) -> None:
    ckpt, root = setup
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    assert main(["--checkpoint", str(broken), "--data", str(root), "--out", str(tmp_path / "o")]) == 2
    assert "broken.pt" in capsys.readouterr().err
    assert main(["--checkpoint", str(ckpt), "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "none" in err and "Traceback" not in err
