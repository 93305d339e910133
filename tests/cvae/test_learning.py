"""The CVAE actually learns the synthetic dance task: it beats copying the first frame.

Every other test checks plumbing; this one checks that a few CPU epochs of a
configuration from spaces/quick.yaml's search space predict the validation
video, free-running from its first frame with prior noise, better than the
trivial predictor that repeats frame 0 (cvae.metrics.copy_first_frame_psnr).
A model that has only learnt the background, or that drifts when fed its own
outputs (exposure bias), scores below that floor, so the test fails on both.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from cvae.core.metrics import copy_first_frame_psnr
from cvae.families.lab4_2024.config import TrainConfig
from cvae.families.lab4_2024.data import load_lab_data
from cvae.families.lab4_2024.synthetic import PRESETS, generate
from cvae.families.lab4_2024.train import Trainer

torch.set_num_threads(1)

MARGIN_DB = 0.5  # the model must beat the floor by this much, not by noise

# One good configuration of spaces/quick.yaml's search space, at the demo's
# frame size and dims (see the comments there for why each value): teacher
# forcing throughout, the KL term scaled down 1000x, no annealing, and the
# shipped spaces' improvements over the template (with the template's own
# function, output_activation none and leaky_slope 1.0, this configuration
# reached 26.5 dB, below the 28.4 dB floor, in 3 epochs).
GOOD = dict(
    output_activation="sigmoid", leaky_slope=0.01, shuffle=True,
    frame_H=16, frame_W=32, F_dim=32, L_dim=8, N_dim=4, D_out_dim=64,
    batch_size=2, train_vi_len=4, val_vi_len=64,
    lr=2e-3, optimizer="Adam", milestones=[100], gamma=0.5,
    kl_anneal_type="None", kl_weight=1e-3,
    tfr=1.0, tfr_sde=10, tfr_d_step=0.1,
    num_epoch=3, val_every=1, seed=1, precision="fp32", device="cpu",
)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    # Freshly generated, so the test checks today's preset, not a cached folder.
    root = generate(tmp_path_factory.mktemp("synthetic") / "small", PRESETS["small"], seed=0, progress=False)
    return load_lab_data(root, GOOD["frame_H"], GOOD["frame_W"], progress=False)


@pytest.mark.timeout(600)  # ~1 min on a quiet core; 3.5 min measured with 5 other jobs on 2 cores
def test_small_preset_training_beats_copy_first_frame(small_data):
    cfg = TrainConfig(**GOOD)
    baseline = float(np.mean(copy_first_frame_psnr(small_data.val_frames[: cfg.val_vi_len])))
    trainer = Trainer(cfg, small_data)
    start = time.perf_counter()
    history = [trainer.run_epoch() for _ in range(cfg.num_epoch)]
    seconds = time.perf_counter() - start
    best = max(m["val_psnr"] for m in history)
    curve = ", ".join(f"{m['val_psnr']:.2f}" for m in history)
    # Shown with `pytest -s`: the figures the README and quick.yaml quote.
    print(f"\ncopy-first-frame {baseline:.2f} dB, best val_psnr {best:.2f} dB, per epoch [{curve}], {seconds:.0f}s")
    assert best > baseline + MARGIN_DB, (
        f"best val_psnr {best:.2f} dB does not beat copy-first-frame {baseline:.2f} dB by {MARGIN_DB} dB "
        f"after {cfg.num_epoch} epochs ({seconds:.0f}s); val_psnr per epoch: {curve}")
