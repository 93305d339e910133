"""The training loop: metrics, resume, optimizers, fast_train, divergence, checkpoints, CLI,
and the execution settings (threads, device, precision) that make a run reproducible."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cvae.core.checkpoint import CheckpointError
from cvae.core.metrics import copy_first_frame_psnr
from cvae.core.training import METRIC_KEYS
from cvae.families.lab4_2024.config import ConfigError
from cvae.families.lab4_2024.data import LabData, load_lab_data
from cvae.families.lab4_2024.train import TrainConfig, Trainer, execution_settings, fit
from cvae.train import main

torch.set_num_threads(1)

TINY = dict(F_dim=16, L_dim=8, N_dim=4, D_out_dim=16, frame_H=8, frame_W=8, train_vi_len=4, val_vi_len=5,
            batch_size=2, num_epoch=2, precision="fp32", channels_last=False, seed=3)


def tiny_cfg(**changes) -> TrainConfig:
    return TrainConfig(**{**TINY, **changes})


def random_data(n_train: int = 24, n_val: int = 6, h: int = 8, w: int = 8, seed: int = 0) -> LabData:
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)

    return LabData(make(n_train), make(n_train), make(n_val), make(n_val))


def square_video(n: int, h: int, w: int, phase: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An orange square moving over a blue-grey wall; the label is the same square, white on black."""
    frames = torch.empty(n, 3, h, w, dtype=torch.uint8)
    labels = torch.zeros(n, 3, h, w, dtype=torch.uint8)
    frames[:, 0], frames[:, 1], frames[:, 2] = 60, 90, 120
    for t in range(n):
        x, y = (phase + 3 * t) % (w - 4), (phase + t) % (h - 4)
        for c, value in enumerate((240, 160, 30)):
            frames[t, c, y:y + 4, x:x + 4] = value
        labels[t, :, y:y + 4, x:x + 4] = 255
    return frames, labels


def _without_times(m: dict) -> dict:
    return {k: v for k, v in m.items() if not k.endswith("_time_s")}


def tiny_synthetic(root: Path, train_length: int = 8) -> Path:
    """A small synthetic dataset in the Lab4 layout (8x16 frames)."""
    from cvae.families.lab4_2024.synthetic import Preset, generate

    return generate(root, Preset(train_video_lengths=(train_length, train_length), val_length=6, test_sequences=1,
                                 test_length=4), seed=0, progress=False)


@pytest.fixture
def restore_threads():
    """torch_threads sets a process-wide count: give the other tests theirs back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def train_metrics(cfg: TrainConfig, data: LabData) -> list[dict]:
    history: list[dict] = []
    fit(cfg, data, on_epoch=lambda m, t: history.append(_without_times(m)))
    return history


def test_metrics_have_every_key_and_val_every() -> None:
    cfg = tiny_cfg(num_epoch=3, val_every=2)
    history: list[dict] = []
    trainer = fit(cfg, random_data(), on_epoch=lambda m, t: history.append(m))
    assert [m["epoch"] for m in history] == [1, 2, 3] and trainer.epoch == 3
    for m in history:
        assert set(m) == set(METRIC_KEYS)
        assert all(isinstance(m[k], float) for k in ("val_psnr", "train_loss", "train_mse", "train_kl", "beta",
                                                      "tfr", "lr", "epoch_time_s", "val_time_s"))
        assert m["teacher_forcing"] in (0, 1) and m["diverged"] is False
    # validated on epoch 2 (val_every) and on the last epoch, not on epoch 1
    assert [m["validated"] for m in history] == [False, True, True]
    assert len(history[1]["val_psnr_per_frame"]) == cfg.val_vi_len - 1
    assert history[1]["val_psnr"] == pytest.approx(np.mean(history[1]["val_psnr_per_frame"]))
    assert trainer.last_prediction.shape == trainer.val_target.shape == (cfg.val_vi_len, 3, 8, 8)
    assert trainer.last_prediction.dtype == torch.uint8
    assert torch.equal(trainer.last_prediction[0], trainer.val_target[0])  # frame 0 is given


def test_lr_schedule_steps_per_epoch() -> None:
    history: list[dict] = []
    fit(tiny_cfg(num_epoch=4, milestones=[1, 3], gamma=0.5, lr=1e-3), random_data(),
        on_epoch=lambda m, t: history.append(m))
    assert [m["lr"] for m in history] == pytest.approx([1e-3, 5e-4, 5e-4, 2.5e-4])


def test_resumed_run_equals_uninterrupted_run(straight_and_resumed) -> None:
    # tfr 0.5 decaying from epoch 0 and fast_train: teacher forcing, shuffling and partial all depend on state.
    cfg = tiny_cfg(num_epoch=4, tfr=0.5, tfr_sde=0, tfr_d_step=0.1, fast_train=True, fast_train_epoch=2,
                   fast_partial=0.5, milestones=[2], kl_anneal_type="Cyclical", kl_anneal_cycle=2,
                   kl_anneal_ratio=0.5, val_every=1)
    # torch.manual_seed disturbs the global RNG state: the checkpoint must restore it
    straight, split, full, resumed = straight_and_resumed(fit, Trainer, cfg, random_data(), split_at=2,
                                                          disturb=lambda: torch.manual_seed(12345))
    assert split == straight
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("optimizer", ["Adam", "AdamW", "Adamax", "SGD", "ASGD", "RMSprop"])
def test_every_optimizer_steps(optimizer: str) -> None:
    cfg = tiny_cfg(num_epoch=1, optimizer=optimizer, momentum=0.9, weight_decay=1e-4, lr=1e-2)
    trainer = Trainer(cfg, random_data(n_train=8))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    metrics = trainer.run_epoch()
    assert type(trainer.optimizer).__name__ == optimizer
    assert math.isfinite(metrics["train_loss"])
    changed = sum(not torch.equal(a, p) for a, p in zip(before, trainer.model.parameters()))
    assert changed > len(before) // 2


def test_fast_train_uses_fewer_sequences() -> None:
    cfg = tiny_cfg(fast_train=True, fast_partial=0.4, fast_train_epoch=2, partial=1.0)
    trainer = Trainer(cfg, random_data(n_train=40))
    fast, _ = trainer.sequences(0)
    # the template clears fast_train after building the loader of epoch fast_train_epoch + 1
    assert all(trainer.sequences(e)[0].shape == fast.shape for e in (1, 2, 3))
    full, _ = trainer.sequences(4)
    assert (fast.shape[0], full.shape[0]) == (4, 10)
    # with fast_train off, the first epochs use every sequence
    assert Trainer(tiny_cfg(fast_train=False), random_data(n_train=40)).sequences(0)[0].shape[0] == 10


def test_the_templates_loader_order_and_whole_batches_by_default() -> None:
    # 10 sequences of 4 frames (40 frames), batch 3: the template's DataLoader(shuffle=False, drop_last=True)
    trainer = Trainer(tiny_cfg(batch_size=3), random_data(n_train=40))
    assert [b.tolist() for b in trainer._batches(10)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    kept = Trainer(tiny_cfg(batch_size=3, drop_last=False), random_data(n_train=40))
    assert [len(b) for b in kept._batches(10)] == [3, 3, 3, 1]
    shuffled = Trainer(tiny_cfg(batch_size=3, shuffle=True), random_data(n_train=40))
    first, second = [torch.cat(shuffled._batches(10)).tolist() for _ in range(2)]
    assert sorted(first) != first and first != second and len(first) == 9  # a new order each epoch
    again = Trainer(tiny_cfg(batch_size=3, shuffle=True), random_data(n_train=40))
    assert torch.cat(again._batches(10)).tolist() == first  # seeded
    with pytest.raises(ConfigError, match="batch_size is 12, but this epoch has only 10 training sequences"):
        Trainer(tiny_cfg(batch_size=12), random_data(n_train=40))._batches(10)


def test_a_checkpoint_from_before_leaky_slope_reads_as_slope_0_01(tmp_path: Path) -> None:
    from cvae.core.checkpoint import save_checkpoint
    from cvae.families.lab4_2024.saved import load_lab4_checkpoint

    trainer = Trainer(tiny_cfg(leaky_slope=0.01), random_data(n_train=8))
    trainer.save_checkpoint(tmp_path / "new.pt")
    state = torch.load(tmp_path / "new.pt", weights_only=True)
    old = {k: v for k, v in state.items() if k != "format"}
    old["config"] = {k: v for k, v in old["config"].items() if k != "leaky_slope"}  # as the old code wrote it
    save_checkpoint(tmp_path / "old.pt", old)
    assert load_lab4_checkpoint(tmp_path / "old.pt")["config"]["leaky_slope"] == 0.01
    assert load_lab4_checkpoint(tmp_path / "new.pt")["config"]["leaky_slope"] == 0.01
    # a model with the template's slope refuses it, naming the field
    with pytest.raises(CheckpointError, match="leaky_slope 0.01 in the checkpoint but 1.0 configured"):
        Trainer(tiny_cfg(), random_data(n_train=8)).load_checkpoint(tmp_path / "old.pt")


def test_val_vi_len_longer_than_video_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"val_vi_len is 7.*only 6 frames"):
        Trainer(tiny_cfg(val_vi_len=7), random_data(n_val=6))


def test_frame_size_mismatch_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="frame_H/frame_W"):
        Trainer(tiny_cfg(frame_H=16), random_data())


def test_divergence_stops_training() -> None:
    # An absurd SGD step blows the weights up: the loss becomes NaN/inf in the first epoch.
    cfg = tiny_cfg(num_epoch=5, optimizer="SGD", lr=1e12, grad_clip=0.0, kl_anneal_type="None")
    history: list[dict] = []
    trainer = fit(cfg, random_data(), on_epoch=lambda m, t: history.append(m))
    assert history[-1]["diverged"] is True and history[-1]["val_psnr"] == 0.0
    assert len(history) < 5 and trainer.diverged
    with pytest.raises(RuntimeError, match="diverged"):
        trainer.run_epoch()


def test_checkpoint_errors_name_file_and_mismatch(tmp_path: Path) -> None:
    data = random_data()
    trainer = Trainer(tiny_cfg(), data)
    good = tmp_path / "good.pt"
    trainer.save_checkpoint(good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pt: not a readable checkpoint"):
        Trainer(tiny_cfg(), data).load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match=r"D_out_dim 16 in the checkpoint but 24 configured.*shape"):
        Trainer(tiny_cfg(D_out_dim=24), data).load_checkpoint(good)
    with pytest.raises(CheckpointError, match="missing.pt: checkpoint file not found"):
        Trainer(tiny_cfg(), data).load_checkpoint(tmp_path / "missing.pt")
    # loads with weights_only=True (plain tensors and Python values only)
    state = torch.load(good, weights_only=True)
    assert state["epoch"] == 0 and state["config"]["D_out_dim"] == 16


def test_bf16_and_channels_last_train() -> None:
    cfg = tiny_cfg(num_epoch=1, precision="bf16", channels_last=True)
    metrics = Trainer(cfg, random_data(n_train=8)).run_epoch()
    assert math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["val_psnr"])


def test_training_beats_copy_first_frame_on_a_learnable_sequence() -> None:
    # The label says where the square is; copying frame 0 puts it in the wrong place.
    h, w = 12, 16
    train_f, train_l = square_video(64, h, w, phase=0)
    val_f, val_l = square_video(8, h, w, phase=5)
    data = LabData(train_f, train_l, val_f, val_l)
    cfg = tiny_cfg(frame_H=h, frame_W=w, val_vi_len=8, batch_size=4, num_epoch=6, lr=5e-3, milestones=[100],
                   kl_anneal_type="Monotonic", tfr=1.0, tfr_sde=100, seed=0,
                   output_activation="sigmoid", leaky_slope=0.01, shuffle=True)  # the shipped spaces' options
    trainer = Trainer(cfg, data)
    untrained, _ = trainer.validate()
    history: list[dict] = []
    trainer = fit(cfg, data, on_epoch=lambda m, t: history.append(m))
    baseline = float(np.mean(copy_first_frame_psnr(val_f)))
    assert history[-1]["val_psnr"] > baseline + 1.0
    assert history[-1]["val_psnr"] > untrained + 0.5
    assert history[-1]["train_mse"] < history[0]["train_mse"]


def test_cli_trains_on_synthetic_data_and_rejects_bad_config(tmp_path: Path, capsys) -> None:
    root = tiny_synthetic(tmp_path / "syn")
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({**TINY, "num_epoch": 2, "frame_H": 8, "frame_W": 16}))
    out = tmp_path / "out"
    assert main(["--config", str(config), "--data", str(root), "--device", "cpu", "--out", str(out)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and "val_psnr" in lines[1]
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    # resume from the last checkpoint with a longer run: one more epoch
    config.write_text(yaml.safe_dump({**TINY, "num_epoch": 3, "frame_H": 8, "frame_W": 16}))
    assert main(["--config", str(config), "--data", str(root), "--resume", str(out / "last.pt")]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("epoch    3")  # after the settings line

    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: -1\n")
    assert main(["--config", str(bad), "--data", str(root)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "lr" in err and "Traceback" not in err
    assert main(["--config", str(config), "--data", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_validate_at_forces_fresh_values_at_scheduler_milestones() -> None:
    # val_every 4 would validate only at epoch 4 (the last); an ASHA rung at epoch 2 needs a fresh value.
    cfg = tiny_cfg(num_epoch=4, val_every=4)
    trainer = Trainer(cfg, random_data(), validate_at=[2])
    validated = [trainer.run_epoch()["validated"] for _ in range(cfg.num_epoch)]
    assert validated == [False, True, False, True]


# --- execution settings: what a run's numbers depend on besides its config ----------
def test_trainer_applies_torch_threads_at_construction(restore_threads) -> None:
    torch.set_num_threads(2)
    Trainer(tiny_cfg(torch_threads=1), random_data())
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    Trainer(tiny_cfg(torch_threads=None), random_data())  # None: the process's count stays
    assert torch.get_num_threads() == 2
    fit(tiny_cfg(num_epoch=1, torch_threads=1), random_data())
    assert torch.get_num_threads() == 1


def test_execution_settings_resolve_threads_device_and_precision(restore_threads, monkeypatch) -> None:
    import cvae.core.precision as precision_module
    from cvae.core.precision import Bf16Support

    torch.set_num_threads(2)
    cpu = torch.device("cpu")
    assert execution_settings(tiny_cfg(torch_threads=1, precision="fp16"), cpu) == {
        "torch_threads": 1, "device": "cpu", "precision": "fp16"}
    assert torch.get_num_threads() == 2  # it reports, it does not apply
    assert execution_settings(tiny_cfg(torch_threads=None), cpu)["torch_threads"] == 2
    # precision auto is recorded as what it resolves to on this device
    monkeypatch.setattr(precision_module, "bf16_support", lambda: Bf16Support(cpu_amx_bf16=True))
    assert execution_settings(tiny_cfg(precision="auto"), "cpu")["precision"] == "bf16"
    monkeypatch.setattr(precision_module, "bf16_support", lambda: Bf16Support())
    assert execution_settings(tiny_cfg(precision="auto"), "cpu")["precision"] == "fp32"
    # and it describes what a Trainer runs with
    trainer = Trainer(tiny_cfg(torch_threads=1, precision="bf16"), random_data())
    settings = execution_settings(trainer.cfg, trainer.device)
    assert settings == {"torch_threads": torch.get_num_threads(), "device": trainer.device.type, "precision": "bf16"}
    assert trainer.dtype == torch.bfloat16


def test_torch_threads_reproduces_a_run_whatever_the_process_default(restore_threads) -> None:
    # The case: a trial ran with 1 thread; retraining it in a process whose default is 2.
    data = random_data()
    torch.set_num_threads(1)
    trial = train_metrics(tiny_cfg(num_epoch=3), data)
    torch.set_num_threads(2)
    again = train_metrics(tiny_cfg(num_epoch=3, torch_threads=1), data)
    assert torch.get_num_threads() == 1
    assert again == trial  # bit-identical: every loss, KL and PSNR
    torch.set_num_threads(2)
    unpinned = train_metrics(tiny_cfg(num_epoch=3), data)
    if unpinned == trial:
        pytest.skip("this CPU gives the same floats with 1 and 2 threads: the check above could not fail here")


def test_cli_runs_a_best_yaml_with_its_threads_device_and_precision(tmp_path: Path, capsys, monkeypatch,
                                                                    restore_threads) -> None:
    from cvae.core import precision_probe
    from cvae.core.precision import Bf16Support

    # The measuring path on any machine (an AVX2-only CPU would pick fp32 without a probe:
    # tests/cvae/test_precision_probe.py covers that path).
    monkeypatch.setattr(precision_probe, "bf16_support", lambda: Bf16Support(cpu_avx512_bf16=True, source="test"))
    # 24-frame videos: enough batches that 1 and 2 threads give different floats on our CPU
    # (8-frame ones do not), so the metrics comparison below checks the threads too.
    root = tiny_synthetic(tmp_path / "syn", train_length=24)
    trial_cfg = {**TINY, "frame_W": 16, "num_epoch": 2}
    # the search's trial: 1 thread, precision and device as written
    torch.set_num_threads(1)
    trial = train_metrics(TrainConfig(**trial_cfg), load_lab_data(root, 8, 16))
    best = tmp_path / "best.yaml"
    best.write_text(yaml.safe_dump({**trial_cfg, "torch_threads": 1, "precision": "fp32", "device": "cpu"}))

    torch.set_num_threads(2)  # the default of the process that retrains it
    out = tmp_path / "out"
    assert main(["--config", str(best), "--data", str(root), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "running with torch_threads 1 (config), device cpu (config), precision fp32 (config)"
    assert lines[1].startswith("epoch    1")
    assert torch.get_num_threads() == 1
    retrained = [_without_times(json.loads(line)) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert retrained == trial

    # --threads overrides the config
    assert main(["--config", str(best), "--data", str(root), "--threads", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "running with torch_threads 2 (--threads), device cpu (config), precision fp32 (config)")
    assert torch.get_num_threads() == 2

    # null and auto are reported as what they resolve to
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({**trial_cfg, "num_epoch": 1, "torch_threads": None, "precision": "auto",
                                     "device": "auto"}))
    assert main(["--config", str(plain), "--data", str(root), "--device", "cpu"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    # auto is measured here (fp32 vs bf16 steps of this config, cvae.core.precision_probe), then cached
    prefix = "running with torch_threads 2 (torch default; config: null), device cpu (--device), precision "
    assert first.startswith(prefix), first
    assert re.fullmatch(r"(bf16 \(config: auto; measured [\d.]+x faster than fp32 here\)"
                        r"|fp32 \(config: auto; bf16 measured [\d.]+x of fp32 here"
                        r"(, within noise: measured again next time)?\))", first[len(prefix):]), first
    assert main(["--config", str(plain), "--data", str(root), "--device", "cpu"]) == 0
    again = capsys.readouterr().out.splitlines()[0]
    if "within noise" not in first:  # a conclusive answer is cached: the second run does not probe
        assert again == first[:-1] + ", cached)"

    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(best), "--data", str(root), "--threads", "0"])
    assert exit_info.value.code == 2
    assert "--threads" in capsys.readouterr().err


def test_one_validation_draw_is_the_templates_and_k_draws_are_averaged() -> None:
    """val_samples 1 rolls out with the z the template's seeded generator gives; K draws
    are K rollouts of their own, and val_psnr is their mean."""
    from cvae.core.metrics import psnr_per_frame
    from cvae.families.lab4_2024.step import generate

    data = random_data()
    trainer = Trainer(tiny_cfg(), data)
    val_psnr, per_frame = trainer.validate()
    target = data.val_frames[: trainer.cfg.val_vi_len].float() / 255
    labels = (data.val_labels[: trainer.cfg.val_vi_len].float() / 255).unsqueeze(0)
    with torch.inference_mode():
        pred = generate(trainer.model, target[:1], labels,
                        generator=torch.Generator().manual_seed(trainer.cfg.seed))[0]
    assert per_frame == pytest.approx(psnr_per_frame(pred[1:], target[1:]).tolist(), abs=1e-4)

    draws = trainer.validate_draws(4, trainer.cfg.seed)                      # (4, T-1)
    assert draws.shape == (4, trainer.cfg.val_vi_len - 1)
    assert draws[0].tolist() == pytest.approx(per_frame, abs=1e-4)           # the first draw is the template's
    assert len({round(float(d.mean()), 5) for d in draws}) > 1               # the draws differ
    averaged = Trainer(tiny_cfg(val_samples=4), data)
    averaged.model.load_state_dict(trainer.model.state_dict())
    mean, _ = averaged.validate()
    assert mean == pytest.approx(float(draws.mean()), abs=1e-4)
    with pytest.raises(ConfigError, match="val_samples is 0, but must be >= 1"):
        tiny_cfg(val_samples=0)
