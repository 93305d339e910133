"""The training step and the prediction rollout of the 2023 SVG-style CVAE.

Shapes: frames float (B, T, 3, 64, 64) in [0, 1], cond float (B, T, 7); T = n_past +
n_future. Steps i = 1 .. T-1 predict frame i from frame i-1 (docs/BAIR-2023.md):

    z_i       = posterior(Enc(ground-truth x_i))                      (training)
    x_hat_i   = Dec(predictor(cat[Enc(x_{i-1}), z_i, c_i]), skip)

x_{i-1} is the ground truth under teacher forcing, else the model's previous
prediction (ground truth while i-1 < n_past: the given frames are always known).
Skips come from x_{i-1} when last_frame_skip or i < n_past, else they stay those
of the last such frame ([O] logic: with n_past 2, from x_0).

Batched: under teacher forcing the encoder runs once over all B*T ground-truth
frames and the decoder once over all B*(T-1) steps; only the two small LSTMs loop
over time. In train mode BatchNorm therefore normalises over B*T frames instead
of B per call (the template's per-step calls): a deliberate difference, the same
one the 2024 family's batched step makes. `sequence_loss_reference` is the
per-step loop, the oracle (tests compare the two in eval mode). Free running
(teacher forcing off) runs that loop: measured faster than the batched
alternative (bench/bair_step.py, see `sequence_loss`).
"""
from __future__ import annotations

import math

import torch

from cvae.families.bair_2023.model import SVG


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, batch_size: int) -> torch.Tensor:
    """KL(q || N(0, I)) summed over batch and z, divided by the batch size (the template's kl_criterion)."""
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / batch_size


def skip_frame(i: int, n_past: int, last_frame_skip: bool) -> int:
    """Index of the frame whose encoder skips step i decodes with."""
    if last_frame_skip or i < n_past:
        return i - 1
    return max(0, n_past - 2)


def sequence_loss(model: SVG, frames: torch.Tensor, cond: torch.Tensor, beta: float, teacher_forcing: bool,
                  n_past: int, last_frame_skip: bool = False, eps: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, mse, kl) of one batch: mse = sum over steps of the per-step MSE (mean over
    B*3*64*64), kl = sum over steps of KL_i / B, loss = mse + beta * kl.
    eps: optional (B, T-1, z) reparameterisation noise."""
    if not teacher_forcing:
        # Free running needs each prediction encoded in turn; encoding the ground truth in one
        # call besides measured slower than the per-step loop (bench/bair_step.py: x0.84 at the
        # demo dims, x0.73 at the template's), so the loop runs.
        return sequence_loss_reference(model, frames, cond, beta, False, n_past, last_frame_skip, eps)
    B, T = frames.shape[:2]
    model.init_hidden(B, frames.device)
    h_all, skips_all = model.encoder(frames.flatten(0, 1))          # (B*T, g), 4 x (B*T, c, s, s)
    h_all = h_all.view(B, T, -1)
    skips_all = [s.unflatten(0, (B, T)) for s in skips_all]         # 4 x (B, T, c, s, s)
    kl = frames.new_zeros((), dtype=torch.float32)
    preds = []
    for i in range(1, T):
        z, mu, logvar = model.posterior(h_all[:, i], None if eps is None else eps[:, i - 1])
        preds.append(model.frame_predictor(torch.cat([h_all[:, i - 1], z, cond[:, i]], 1)))
        kl = kl + kl_divergence(mu, logvar, B)
    h_pred = torch.stack(preds, 1).flatten(0, 1)                 # (B*(T-1), g)
    idx = torch.tensor([skip_frame(i, n_past, last_frame_skip) for i in range(1, T)], device=frames.device)
    skip = [s[:, idx].flatten(0, 1) for s in skips_all]         # 4 x (B*(T-1), c, s, s)
    x_hat = model.decoder(h_pred, skip).unflatten(0, (B, T - 1))  # (B, T-1, 3, 64, 64)
    per_step = (x_hat.float() - frames[:, 1:].float()).pow(2).mean(dim=(0, 2, 3, 4))  # (T-1,)
    mse = per_step.sum()
    return mse + beta * kl, mse, kl


def sequence_loss_reference(model: SVG, frames: torch.Tensor, cond: torch.Tensor, beta: float,
                            teacher_forcing: bool, n_past: int, last_frame_skip: bool = False,
                            eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The template's per-step loop (one encoder call per frame); the oracle for `sequence_loss`."""
    B, T = frames.shape[:2]
    model.init_hidden(B, frames.device)
    mse = frames.new_zeros((), dtype=torch.float32)
    kl = frames.new_zeros((), dtype=torch.float32)
    x_pred = frames[:, 0]
    skip = None
    for i in range(1, T):
        x_in = frames[:, i - 1] if (teacher_forcing or i - 1 < n_past) else x_pred
        h, fresh = model.encoder(x_in)
        if last_frame_skip or i < n_past or skip is None:
            skip = fresh
        h_target = model.encoder(frames[:, i])[0]
        z, mu, logvar = model.posterior(h_target, None if eps is None else eps[:, i - 1])
        x_pred = model.decoder(model.frame_predictor(torch.cat([h, z, cond[:, i]], 1)), skip)
        mse = mse + torch.nn.functional.mse_loss(x_pred.float(), frames[:, i].float())
        kl = kl + kl_divergence(mu, logvar, B)
    return mse + beta * kl, mse, kl


@torch.no_grad()
def rollout(model: SVG, frames: torch.Tensor, cond: torch.Tensor, n_past: int, last_frame_skip: bool = False,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Prediction as at test time: the first n_past frames given (z from the posterior of the
    ground truth to warm the LSTMs up), then z ~ N(0, I) each step and the model's own
    predictions fed back (teacher forcing 0). frames: float (B, T, 3, 64, 64), only the
    first n_past are read. Returns float (B, T, 3, 64, 64): the given frames, then predictions."""
    B, T = cond.shape[:2]
    model.init_hidden(B, frames.device)
    out = [frames[:, i] for i in range(n_past)]
    x_in = frames[:, 0]
    skip = None
    for i in range(1, T):
        h, fresh = model.encoder(x_in)
        if last_frame_skip or i < n_past or skip is None:
            skip = fresh
        if i < n_past:
            z, _, _ = model.posterior(model.encoder(frames[:, i])[0])
            model.frame_predictor(torch.cat([h, z, cond[:, i]], 1))  # advance the predictor's state
            x_in = frames[:, i]
        else:
            z = torch.randn((B, model.z_dim), device=frames.device, generator=generator)
            x_in = model.decoder(model.frame_predictor(torch.cat([h, z, cond[:, i]], 1)), skip)
            out.append(x_in)
    return torch.stack(out, 1)


def psnr_frames(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR of each frame as the template's finn_eval_seq computes it: the mean over the
    3 channels of 10 log10(1 / mse_c). pred, target: float (..., 3, H, W) in [0, 1] -> (...).
    A channel predicted exactly counts as 100 dB (mse floored at 1e-10) instead of inf."""
    mse_c = (pred.float().clamp(0, 1) - target.float()).pow(2).mean(dim=(-2, -1)).clamp_min(1e-10)  # (..., 3)
    return (10 * torch.log10(1.0 / mse_c)).mean(dim=-1)


def copy_last_frame_psnr(frames: torch.Tensor, n_past: int) -> torch.Tensor:
    """PSNR of frames n_past..T-1 each predicted by the last given frame: (B, T - n_past)."""
    last = frames[:, n_past - 1:n_past].expand_as(frames[:, n_past:])
    return psnr_frames(last, frames[:, n_past:])


def mean_finite(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(sum(finite) / len(finite)) if finite else float("nan")
