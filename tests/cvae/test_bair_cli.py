"""cvae.train / cvae.predict with --model bair-2023 (or the model key of a config / checkpoint)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from PIL import Image

from cvae.families.bair_2023.synthetic import BairPreset, generate
from cvae.predict import main as predict_main
from cvae.train import main as train_main

TINY_SET = BairPreset(train_sequences=3, validate_sequences=2, test_sequences=3, per_folder=2)
TINY_CFG = dict(width=0.0625, g_dim=8, z_dim=2, rnn_size=8, batch_size=2, epoch_size=2, niter=1, n_past=2,
                n_future=3, val_every=1, tfr_start_decay_epoch=0, kl_anneal_cyclical=True, device="cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("bair-cli")
    root = generate(tmp / "data", TINY_SET, seed=1, progress=False)
    cfg = tmp / "best.yaml"
    cfg.write_text(yaml.safe_dump({"model": "bair-2023", **TINY_CFG}))  # as a search's best.yaml names it
    assert train_main(["--config", str(cfg), "--data", str(root), "--out", str(tmp / "out")]) == 0
    return root, tmp / "out"


def test_train_reads_the_model_key_and_writes_checkpoints(trained, capsys):
    _, out = trained
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_train_model_flag_overrides_and_unknown_model_exits_2(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"F_dim": 64}))
    assert train_main(["--model", "bair-2023", "--config", str(cfg), "--data", str(tmp_path)]) == 2
    assert "unknown BairConfig field 'F_dim'" in capsys.readouterr().err
    assert train_main(["--model", "bair-2031", "--config", str(cfg)]) == 2
    assert "model is 'bair-2031'" in capsys.readouterr().err


def test_train_missing_data_exits_2_naming_the_folder(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"model": "bair-2023", **TINY_CFG}))
    assert train_main(["--config", str(cfg), "--data", str(tmp_path / "none")]) == 2
    assert f"{tmp_path / 'none'}: data folder does not exist" in capsys.readouterr().err


def test_predict_writes_gifs_and_the_psnr_csv(trained, tmp_path, capsys):
    root, out = trained
    pred = tmp_path / "pred"
    # no --model: the checkpoint records its family
    assert predict_main(["--checkpoint", str(out / "best.pt"), "--data", str(root), "--out", str(pred)]) == 0
    gifs = sorted(pred.glob("seq*.gif"))
    assert len(gifs) == 3
    with Image.open(gifs[0]) as gif:
        assert gif.size == (128, 64) and gif.n_frames == 5  # ground truth | prediction, 2 past + 3 future
    rows = list(csv.reader((pred / "psnr.csv").open()))
    assert rows[0] == ["sequence", "folder", "frame_2", "frame_3", "frame_4", "mean"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2", "mean", "copy_last_frame"]
    assert all(float(v) > 0 for v in rows[-2][2:])
    assert "mean test PSNR" in capsys.readouterr().out
    assert predict_main(["--model", "bair-2023", "--checkpoint", str(out / "best.pt"), "--data", str(root),
                         "--out", str(tmp_path / "p2")]) == 0
