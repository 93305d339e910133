"""The trainers on a real CUDA device (issue 16): skipped without a GPU; bench/gpu.py's
run executes them with `python -m pytest -m cuda tests/cvae/test_cuda_device.py`.

What runs without a GPU (the choice of RNG state, the optimizer options, fp32
generation) is in tests/cvae/test_cuda.py.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cvae.core.checkpoint import save_checkpoint
from cvae.core.precision import bf16_support, choose_precision, resolve_precision
from cvae.families.bair_2023.config import BairConfig
from cvae.families.bair_2023.data import BairData
from cvae.families.bair_2023.train import BairTrainer
from cvae.families.bair_2023.train import fit as bair_fit
from cvae.families.lab4_2024.data import LabData
from cvae.families.lab4_2024.train import TrainConfig, Trainer, fit

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)")]

TINY = dict(F_dim=16, L_dim=8, N_dim=4, D_out_dim=16, frame_H=8, frame_W=16, train_vi_len=4, val_vi_len=6,
            batch_size=2, num_epoch=2, seed=3, device="cuda")
BAIR_TINY = dict(width=0.0625, g_dim=8, z_dim=2, rnn_size=8, batch_size=2, epoch_size=2, num_epoch=3, n_past=2,
                 n_future=3, val_every=1, val_batch_size=2, device="cuda")


def lab_cfg(**changes) -> TrainConfig:
    return TrainConfig(**{**TINY, **changes})


def random_lab_data(n_train: int = 24, n_val: int = 8, seed: int = 0) -> LabData:
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, 3, 8, 16), dtype=torch.uint8, generator=g)

    return LabData(make(n_train), make(n_train), make(n_val), make(n_val))


def random_bair_data(T: int = 5) -> BairData:
    g = torch.Generator().manual_seed(0)
    return BairData(train_frames=torch.randint(0, 256, (4, T, 3, 64, 64), dtype=torch.uint8, generator=g),
                    train_cond=torch.randn(4, T, 7, generator=g),
                    val_frames=torch.randint(0, 256, (3, T, 3, 64, 64), dtype=torch.uint8, generator=g),
                    val_cond=torch.randn(3, T, 7, generator=g))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_trainer_trains_and_validates_on_the_gpu(precision: str, channels_last: bool) -> None:
    history: list[dict] = []
    trainer = fit(lab_cfg(precision=precision, channels_last=channels_last, tfr=0.5, tfr_sde=0),
                  random_lab_data(), on_epoch=lambda m, t: history.append(m))
    assert all(p.device.type == "cuda" for p in trainer.model.parameters())
    assert [m["epoch"] for m in history] == [1, 2]
    assert all(math.isfinite(m["train_loss"]) and m["val_psnr"] > 0 for m in history)
    assert trainer.last_prediction.device.type == "cpu" and trainer.last_prediction.dtype == torch.uint8
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


def test_resumed_run_on_the_gpu_equals_the_uninterrupted_run(straight_and_resumed) -> None:
    # deterministic cuDNN and no TF32 (cvae/core/cuda.py) are what make this bitwise
    cfg = lab_cfg(num_epoch=4, tfr=0.5, tfr_sde=0, tfr_d_step=0.1, precision="bf16", channels_last=True,
                  kl_anneal_type="Cyclical", kl_anneal_cycle=2, kl_anneal_ratio=0.5, val_every=1)

    def disturb() -> None:  # the device RNG too: the checkpoint must restore it
        torch.manual_seed(999)
        torch.cuda.manual_seed(999)

    straight, split, full, resumed = straight_and_resumed(fit, Trainer, cfg, random_lab_data(), split_at=2,
                                                          disturb=disturb)
    assert split == straight
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_checkpoint_holds_the_own_device_state_and_old_lists_resume(tmp_path: Path) -> None:
    cfg = lab_cfg(num_epoch=1, precision="fp32")
    trainer = Trainer(cfg, random_lab_data())
    trainer.run_epoch()
    state = trainer.state_dict()
    assert isinstance(state["rng"]["cuda"], torch.Tensor)  # one device's state, not a list per visible GPU
    # a checkpoint from a process that saw 2 GPUs: get_rng_state_all() gave a list of 2
    state["rng"]["cuda"] = [state["rng"]["cuda"], state["rng"]["cuda"].clone()]
    save_checkpoint(tmp_path / "old.pt", state)
    resumed = Trainer(cfg.replace(num_epoch=2), random_lab_data())
    resumed.load_checkpoint(tmp_path / "old.pt")
    assert resumed.epoch == 1 and math.isfinite(resumed.run_epoch()["train_loss"])


def test_auto_precision_follows_native_bf16_on_this_gpu() -> None:
    native = torch.cuda.is_bf16_supported(including_emulation=False)
    assert bf16_support().cuda_bf16 is native
    expected = torch.bfloat16 if native else torch.float32
    assert resolve_precision("auto", "cuda") == expected
    assert choose_precision("cuda", bf16_support())[0] == ("bf16" if native else "fp32")


@pytest.mark.parametrize("optimizer", ["Adam", "AdamW", "Adamax", "SGD", "ASGD", "RMSprop"])
def test_every_optimizer_steps_on_the_gpu(optimizer: str) -> None:
    trainer = Trainer(lab_cfg(num_epoch=1, optimizer=optimizer, momentum=0.9, weight_decay=1e-4, lr=1e-2,
                              precision="fp32"), random_lab_data(n_train=8))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    assert math.isfinite(trainer.run_epoch()["train_loss"])
    changed = sum(not torch.equal(a, p) for a, p in zip(before, trainer.model.parameters()))
    assert changed > len(before) // 2
    if optimizer == "ASGD":
        assert trainer.optimizer.defaults["capturable"] is True
    if optimizer in ("Adam", "AdamW"):
        assert trainer.optimizer.defaults["fused"] is True


def test_prediction_on_the_gpu_writes_the_submission(tmp_path: Path) -> None:
    from cvae.families.lab4_2024.predict import predict
    from cvae.families.lab4_2024.synthetic import Preset, generate

    root = generate(tmp_path / "data", Preset(train_video_lengths=(8, 8), val_length=6, test_sequences=2,
                                              test_length=5), seed=0, progress=False)
    from cvae.families.lab4_2024.data import load_lab_data

    cfg = lab_cfg(num_epoch=1, precision="bf16")
    trainer = fit(cfg, load_lab_data(root, 8, 16, progress=False))
    trainer.save_checkpoint(tmp_path / "best.pt")
    written = predict(tmp_path / "best.pt", root, tmp_path / "pred", device="cuda")
    lines = (tmp_path / "pred" / "submission.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * 5 and any(p.suffix == ".gif" for p in written)


def test_bair_trainer_trains_and_resumes_identically_on_the_gpu(straight_and_resumed) -> None:
    cfg = BairConfig(**BAIR_TINY, precision="bf16")
    straight, split, _, _ = straight_and_resumed(bair_fit, BairTrainer, cfg, random_bair_data(), split_at=1,
                                                 disturb=lambda: torch.cuda.manual_seed(999))
    assert all(math.isfinite(m["train_loss"]) for m in straight)
    assert split == straight
