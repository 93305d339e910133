"""The 2023 family's training step and validation at tiny dims (cvae.families.bair_2023.step, cvae.families.bair_2023.train)."""
from __future__ import annotations

import math

import pytest
import torch

import cvae.families.bair_2023.train as bair_train
from cvae.core.training import METRIC_KEYS
from cvae.families.bair_2023.config import BairConfig
from cvae.families.bair_2023.data import BairData
from cvae.families.bair_2023.model import SVG
from cvae.families.bair_2023.step import (
    copy_last_frame_psnr,
    kl_divergence,
    psnr_frames,
    rollout,
    sequence_loss,
    sequence_loss_reference,
    skip_frame,
)
from cvae.families.lab4_2024.config import ConfigError

TINY = dict(width=0.0625, g_dim=8, z_dim=2, rnn_size=8, batch_size=2, epoch_size=2, num_epoch=2, n_past=2,
            n_future=3, val_every=1, val_batch_size=2)


def tiny_model() -> SVG:
    torch.manual_seed(0)
    return SVG(g_dim=8, z_dim=2, rnn_size=8, width=0.0625)


def tiny_data(n_train: int = 4, n_val: int = 3, T: int = 5) -> BairData:
    g = torch.Generator().manual_seed(0)
    return BairData(train_frames=torch.randint(0, 256, (n_train, T, 3, 64, 64), dtype=torch.uint8, generator=g),
                    train_cond=torch.randn(n_train, T, 7, generator=g),
                    val_frames=torch.randint(0, 256, (n_val, T, 3, 64, 64), dtype=torch.uint8, generator=g),
                    val_cond=torch.randn(n_val, T, 7, generator=g))


def test_skip_frames_follow_the_template():
    assert [skip_frame(i, 2, False) for i in range(1, 6)] == [0, 0, 0, 0, 0]  # n_past 2: from x_0
    assert [skip_frame(i, 3, False) for i in range(1, 6)] == [0, 1, 1, 1, 1]
    assert [skip_frame(i, 2, True) for i in range(1, 6)] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("teacher_forcing", [True, False])
@pytest.mark.parametrize("last_frame_skip", [False, True])
def test_batched_step_equals_the_per_step_loop_in_eval_mode(teacher_forcing, last_frame_skip):
    model = tiny_model().eval()  # BN on running statistics: both paths compute one function
    x, c = torch.rand(2, 5, 3, 64, 64), torch.randn(2, 5, 7)
    eps = torch.randn(2, 4, 2)
    got = sequence_loss(model, x, c, 0.3, teacher_forcing, 2, last_frame_skip, eps=eps)
    want = sequence_loss_reference(model, x, c, 0.3, teacher_forcing, 2, last_frame_skip, eps=eps)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_loss_is_mse_plus_beta_kl_over_batch():
    model = tiny_model().train()
    x, c = torch.rand(2, 5, 3, 64, 64), torch.randn(2, 5, 7)
    loss, mse, kl = sequence_loss(model, x, c, 0.25, True, 2)
    assert torch.allclose(loss, mse + 0.25 * kl)
    mu, logvar = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.allclose(kl_divergence(mu, logvar, 3), -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum() / 3)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_rollout_keeps_the_given_frames_and_predicts_the_rest():
    model = tiny_model().eval()
    x, c = torch.rand(2, 5, 3, 64, 64), torch.randn(2, 5, 7)
    out = rollout(model, x, c, 2, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out[:, :2], x[:, :2])
    # the future never reads the ground truth
    x2 = x.clone()
    x2[:, 2:] = 0
    out2 = rollout(model, x2, c, 2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, 2:], out2[:, 2:])


def test_psnr_is_the_channel_mean_of_the_template():
    target = torch.zeros(1, 3, 4, 4)
    pred = target.clone()
    pred[:, 0] = 0.1  # channel mses 0.01, ~0, ~0
    assert psnr_frames(pred, target).item() == pytest.approx((20 + 100 + 100) / 3)
    frames = torch.rand(2, 5, 3, 8, 8)
    assert copy_last_frame_psnr(frames, 2).shape == (2, 3)


def test_run_epoch_reports_the_contract_metrics():
    cfg = BairConfig(**TINY)
    trainer = bair_train.BairTrainer(cfg, tiny_data(), "cpu")
    m = trainer.run_epoch()
    assert set(METRIC_KEYS) <= set(m)
    assert m["epoch"] == 1 and m["validated"] and len(m["val_psnr_per_frame"]) == cfg.n_future
    assert math.isfinite(m["val_psnr"]) and m["val_psnr"] == pytest.approx(sum(m["val_psnr_per_frame"]) / 3)
    assert m["teacher_forcing"] == 1.0 and m["tfr"] == 1.0
    assert trainer.last_prediction.shape == (5, 3, 64, 64) and trainer.last_prediction.dtype == torch.uint8
    assert torch.equal(trainer.last_prediction[:2], trainer.val_target[:2])


def test_validation_averages_every_sequence_not_the_last_batch(monkeypatch):
    """The template's bug: its average covers only the last batch. Here sequence s is
    predicted with PSNR 10 * (s + 1) dB on every frame; the mean must cover all 3."""
    cfg = BairConfig(**{**TINY, "val_batch_size": 2})
    data = tiny_data(n_val=3)
    calls = []

    def fake_rollout(model, x, c, n_past, last_frame_skip=False, generator=None):
        calls.append(x.shape[0])
        return x  # replaced below by PSNR per sequence

    def fake_psnr(pred, target):
        start = sum(calls[:-1])
        rows = torch.tensor([10.0 * (start + i + 1) for i in range(pred.shape[0])])
        return rows[:, None].expand(pred.shape[0], pred.shape[1])

    monkeypatch.setattr(bair_train, "rollout", fake_rollout)
    monkeypatch.setattr(bair_train, "psnr_frames", fake_psnr)
    trainer = bair_train.BairTrainer(cfg, data, "cpu")
    val_psnr, per_frame = trainer.validate()
    assert calls == [2, 1]
    assert per_frame == pytest.approx([20.0, 20.0, 20.0]) and val_psnr == pytest.approx(20.0)  # not 30 (last batch)


def test_teacher_forcing_is_drawn_per_iteration():
    cfg = BairConfig(**{**TINY, "tfr": 0.5, "epoch_size": 12, "num_epoch": 1, "val_every": 5})
    m = bair_train.BairTrainer(cfg, tiny_data(), "cpu").run_epoch()
    assert 0 < m["teacher_forcing"] < 1


def test_checkpoint_resume_continues_identically(tmp_path):
    cfg = BairConfig(**{**TINY, "num_epoch": 2})
    straight = bair_train.fit(cfg, tiny_data(), device="cpu")
    first = bair_train.BairTrainer(cfg, tiny_data(), "cpu")
    first.run_epoch()
    first.save_checkpoint(tmp_path / "c.pt")
    resumed = bair_train.fit(cfg, tiny_data(), device="cpu", resume_from=tmp_path / "c.pt")
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_data_too_short_for_the_sequence_is_refused():
    cfg = BairConfig(**{**TINY, "n_future": 10})
    with pytest.raises(ConfigError, match="n_past \\+ n_future is 12, but data.train_frames holds only 5"):
        bair_train.BairTrainer(cfg, tiny_data(), "cpu")


def test_config_defaults_and_template_aliases():
    cfg = BairConfig()
    assert (cfg.lr, cfg.batch_size, cfg.epoch_size, cfg.num_epoch, cfg.g_dim, cfg.z_dim, cfg.rnn_size) == \
        (0.002, 12, 600, 300, 128, 64, 256)
    assert (cfg.n_past, cfg.n_future, cfg.predictor_rnn_layers, cfg.posterior_rnn_layers) == (2, 10, 2, 1)
    assert (cfg.kl_anneal_type, cfg.kl_anneal_ratio, cfg.kl_anneal_cycle) == ("Monotonic", 0.5, 3)
    cfg = BairConfig.from_dict({"tfr_start_decay_epoch": 15, "tfr_decay_step": 0.01, "kl_anneal_cyclical": True,
                                "niter": 100})
    assert (cfg.tfr_sde, cfg.tfr_d_step, cfg.kl_anneal_type, cfg.num_epoch) == (15, 0.01, "Cyclical", 100)
    assert BairConfig.from_dict({"kl_anneal_cyclical": False}).kl_anneal_type == "Monotonic"
    with pytest.raises(ConfigError, match="unknown BairConfig field 'F_dim'"):
        BairConfig.from_dict({"F_dim": 128})
    with pytest.raises(ConfigError, match="tfr_decay_step and tfr_d_step both set"):
        BairConfig.from_dict({"tfr_d_step": 0.1, "tfr_decay_step": 0.1})


def test_teacher_forcing_decays_as_the_2023_templates_loop():
    # the template: `if epoch >= tfr_start_decay_epoch: tfr -= tfr_decay_step` after each (0-based) epoch
    from cvae.families.bair_2023.train import bair_teacher_forcing_ratio

    cfg = BairConfig(**{**TINY, "tfr": 1.0, "tfr_sde": 3, "tfr_d_step": 0.1, "num_epoch": 8})
    expected, tfr = [], 1.0
    for epoch in range(8):
        expected.append(tfr)
        if epoch >= 3:
            tfr = max(tfr - 0.1, 0.0)
    assert [bair_teacher_forcing_ratio(e, cfg) for e in range(8)] == pytest.approx(expected)
    assert [bair_teacher_forcing_ratio(e, cfg) for e in range(5)] == pytest.approx([1, 1, 1, 1, 0.9])
