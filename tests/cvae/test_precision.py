"""bf16 autocast trains as well as fp32 on the small synthetic preset (issue 5)."""
from __future__ import annotations

import pytest
import torch

from cvae.families.lab4_2024.config import TrainConfig
from cvae.families.lab4_2024.data import load_lab_data
from cvae.families.lab4_2024.synthetic import generate
from cvae.families.lab4_2024.train import fit

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    root = generate(tmp_path_factory.mktemp("syn") / "small", preset="small", seed=0, progress=False)
    return load_lab_data(root, 16, 32, progress=False)


@pytest.mark.slow
def test_bf16_reaches_fp32_val_psnr_within_half_a_db(small_data) -> None:
    # Few epochs of the demo's model on the small preset; only precision differs.
    base = dict(num_epoch=2, batch_size=4, frame_H=16, frame_W=32, F_dim=16, L_dim=8, N_dim=4, D_out_dim=32,
                train_vi_len=8, val_vi_len=16, partial=0.5, milestones=[10], kl_anneal_type="None", kl_weight=1e-3,
                tfr=0.0, lr=2e-3, channels_last=True, seed=0)
    psnr = {}
    for precision in ("fp32", "bf16"):
        trainer = fit(TrainConfig(**base, precision=precision), small_data)
        psnr[precision] = trainer._last_val[0]
    assert psnr["fp32"] > 5.0  # it trained and validated at all
    print("val_psnr by precision:", psnr)
    assert abs(psnr["bf16"] - psnr["fp32"]) < 0.5, psnr
