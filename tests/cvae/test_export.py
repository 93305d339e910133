"""`python -m cvae.export --to lab4-template`: the template's checkpoint format and
names, loaded with strict=True into the template's modules (rebuilt from their
published structure in lab4_template_modules.py), predicting the same frames as
cvae-search for the same z; a model that is not the template's function is refused."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cvae.families.lab4_2024.data import LabData
from cvae.families.lab4_2024.export import ExportError, export_lab4_template, main
from cvae.families.lab4_2024.model import CVAE
from cvae.families.lab4_2024.train import TrainConfig, Trainer
from tests.cvae.lab4_template_modules import TemplateVAE

torch.set_num_threads(1)
DEMO_DIMS = dict(F_dim=32, L_dim=8, N_dim=4, D_out_dim=64)
LAB_DIMS = dict(F_dim=128, L_dim=32, N_dim=12, D_out_dim=192)


def _checkpoint(tmp_path: Path, dims: dict, epochs: int = 1, **options) -> tuple[Path, Trainer]:
    g = torch.Generator().manual_seed(0)
    frames = [torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g) for n in (8, 8, 4, 4)]
    cfg = TrainConfig(**dims, frame_H=8, frame_W=8, train_vi_len=4, val_vi_len=4, batch_size=2, num_epoch=epochs,
                      precision="fp32", channels_last=False, device="cpu", tfr=0.8, tfr_sde=1, tfr_d_step=0.1,
                      seed=3, **options)
    trainer = Trainer(cfg, LabData(*frames))
    for _ in range(epochs):
        trainer.run_epoch()
    path = tmp_path / "last.pt"
    trainer.save_checkpoint(path)
    return path, trainer


@pytest.mark.parametrize("dims", [DEMO_DIMS, LAB_DIMS], ids=["demo-dims", "lab-dims"])
def test_the_templates_modules_load_the_export_strictly_and_predict_the_same(tmp_path: Path, dims: dict) -> None:
    path, trainer = _checkpoint(tmp_path, dims)
    info = export_lab4_template(path, tmp_path / "model.ckpt")
    saved = torch.load(tmp_path / "model.ckpt", weights_only=True)
    assert set(saved) == {"state_dict", "optimizer", "lr", "tfr", "last_epoch"}
    assert (info["last_epoch"], saved["last_epoch"]) == (1, 1) and saved["tfr"] == pytest.approx(0.7)
    template = TemplateVAE(**dims)
    template.load_state_dict(saved["state_dict"], strict=True)  # what the template's Tester does
    if dims == LAB_DIMS:  # the template's model at the lab dims
        assert sum(p.numel() for p in template.parameters()) == 1_585_620
    ours: CVAE = trainer.model.eval()
    template.eval()
    g = torch.Generator().manual_seed(1)
    prev, label = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    z = torch.randn(2, dims["N_dim"], 8, 8, generator=g)
    with torch.no_grad():
        expected = ours.decode(ours.frame_transformation(prev), ours.label_transformation(label), z)
        torch.testing.assert_close(template.next_frame(prev, label, z), expected)
        _, mu, logvar = ours.Gaussian_Predictor(ours.frame_transformation(prev), ours.label_transformation(label),
                                                torch.zeros_like(z))
        t_mu, t_logvar = template.posterior(prev, label)
        torch.testing.assert_close((t_mu, t_logvar), (mu, logvar))


def test_the_raw_checkpoint_is_what_the_tester_refuses(tmp_path: Path) -> None:
    # cvae-search's own names: strict loading fails on the ResidualBlock shortcuts (adaptor vs skip)
    path, trainer = _checkpoint(tmp_path, DEMO_DIMS)
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*skip"):
        TemplateVAE(**DEMO_DIMS).load_state_dict(trainer.model.state_dict(), strict=True)


def test_a_model_that_is_not_the_templates_function_is_refused(tmp_path: Path, capsys) -> None:
    path, _ = _checkpoint(tmp_path, DEMO_DIMS, output_activation="sigmoid", leaky_slope=0.01)
    out = tmp_path / "model.ckpt"
    with pytest.raises(ExportError, match="output_activation is 'sigmoid'.*leaky_slope is 0.01.*--force"):
        export_lab4_template(path, out)
    assert not out.exists()
    assert main([str(path), "--to", "lab4-template", "--out", str(out)]) == 2
    assert "error:" in capsys.readouterr().err and not out.exists()
    assert main([str(path), "--to", "lab4-template", "--out", str(out), "--force"]) == 0
    TemplateVAE(**DEMO_DIMS).load_state_dict(torch.load(out, weights_only=True)["state_dict"], strict=True)


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a checkpoint")
    assert main([str(bad), "--to", "lab4-template", "--out", str(tmp_path / "x.ckpt")]) == 2
    assert str(bad) in capsys.readouterr().err


def test_a_checkpoint_the_templates_trainer_wrote_predicts_here(tmp_path: Path) -> None:
    # Written as the template's Trainer.save does: torch.save({...state_dict of VAE_Model...})
    from cvae.families.lab4_2024.export import read_template_checkpoint
    from cvae.families.lab4_2024.synthetic import Preset, generate
    from cvae.predict import main as predict_main

    torch.manual_seed(5)
    template = TemplateVAE(**DEMO_DIMS)
    optimizer = torch.optim.Adam(template.parameters(), lr=1e-3)
    path = tmp_path / "epoch=12.ckpt"
    torch.save({"state_dict": template.state_dict(), "optimizer": optimizer.state_dict(), "lr": 1e-3,
                "tfr": 0.5, "last_epoch": 12}, path)
    model, cfg, saved = read_template_checkpoint(path, 8, 16)
    assert (cfg.F_dim, cfg.L_dim, cfg.N_dim, cfg.D_out_dim) == (32, 8, 4, 64) and saved["last_epoch"] == 12
    assert (cfg.output_activation, cfg.leaky_slope) == ("none", 1.0)
    g = torch.Generator().manual_seed(2)
    prev, label = torch.rand(1, 3, 8, 16, generator=g), torch.rand(1, 3, 8, 16, generator=g)
    z = torch.randn(1, 4, 8, 16, generator=g)
    with torch.no_grad():
        ours = model.decode(model.frame_transformation(prev), model.label_transformation(label), z)
        torch.testing.assert_close(ours, template.eval().next_frame(prev, label, z))
    root = generate(tmp_path / "syn", Preset(train_video_lengths=(4,), val_length=4, test_sequences=1,
                                             test_length=4), seed=1, progress=False)
    out = tmp_path / "pred"
    assert predict_main(["--checkpoint", str(path), "--from", "lab4-template", "--frame-size", "8", "16",
                         "--data", str(root), "--out", str(out), "--device", "cpu", "--model", "lab4-2024"]) == 0
    assert (out / "pred_seq0.gif").is_file() and (out / "submission.csv").is_file()


def test_a_file_that_is_not_a_template_checkpoint_is_named(tmp_path: Path) -> None:
    from cvae.core.checkpoint import CheckpointError
    from cvae.families.lab4_2024.export import read_template_checkpoint

    path = tmp_path / "x.ckpt"
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match=r"x\.ckpt: not a template checkpoint"):
        read_template_checkpoint(path, 8, 8)
    torch.save({"state_dict": {"Generator.0.weight": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="not the template's VAE_Model: no tensor frame_transformation"):
        read_template_checkpoint(path, 8, 8)


def test_a_template_checkpoint_starts_a_fine_tune(tmp_path: Path, capsys) -> None:
    import yaml

    from cvae.families.lab4_2024.synthetic import Preset, generate
    from cvae.families.lab4_2024.train import from_template_weights
    from cvae.train import main as train_main

    torch.manual_seed(7)
    template = TemplateVAE(**DEMO_DIMS)
    path = tmp_path / "epoch=70.ckpt"
    torch.save({"state_dict": template.state_dict(), "optimizer": template.state_dict(), "lr": 1e-3,
                "tfr": 1.0, "last_epoch": 70}, path)  # the template saves the model's state as "optimizer" too
    root = generate(tmp_path / "syn", Preset(train_video_lengths=(8,), val_length=4, test_sequences=1,
                                             test_length=4), seed=1, progress=False)
    cfg = dict(DEMO_DIMS, frame_H=8, frame_W=16, train_vi_len=4, val_vi_len=4, num_epoch=1, precision="fp32",
               channels_last=False, device="cpu", optimizer="ASGD")
    config = tmp_path / "finetune.yaml"
    config.write_text(yaml.safe_dump(cfg))
    from cvae.families.lab4_2024.data import load_lab_data

    trainer = from_template_weights(TrainConfig(**cfg), load_lab_data(root, 8, 16, progress=False), path)
    for (name, ours), theirs in zip(trainer.model.state_dict().items(), template.state_dict().values()):
        assert torch.equal(ours, theirs), name  # every tensor starts at the template's (names mapped)
    assert train_main(["--config", str(config), "--data", str(root), "--resume", str(path),
                       "--from", "lab4-template", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "last.pt").is_file()
    config.write_text(yaml.safe_dump({**cfg, "output_activation": "sigmoid", "F_dim": 16}))
    assert train_main(["--config", str(config), "--data", str(root), "--resume", str(path),
                       "--from", "lab4-template"]) == 2
    err = capsys.readouterr().err
    assert "F_dim is 16 in the config but 32" in err and "output_activation is 'sigmoid'" in err
