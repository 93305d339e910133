"""The training step's loss and autoregressive generation, batched over time.

`sequence_loss` is the step the trainer runs; `sequence_loss_reference` is the
per-frame loop as the Lab4 template writes it, kept as the oracle the batched
version is tested against (tests/cvae/test_step.py).

Batching and BatchNorm: the label encoder holds a BatchNorm2d. The template
encodes the labels of one time step at a time, so in train mode BN normalises
over the B label frames of that step; `sequence_loss` encodes the labels of all
T-1 steps in one call, so BN normalises over all B*(T-1) label frames of the
sequence batch. This is a deliberate difference (one large call instead of T-1
small ones; the statistics are also less noisy). In eval mode (running
statistics) both paths compute the same function, and the tests check that the
two paths differ only through BN.
"""
from __future__ import annotations

import torch

from cvae.families.lab4_2024.model import CVAE


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, batch_size: int) -> torch.Tensor:
    """KL(q || N(0, I)) summed over every element, divided by the batch size (template's kl_criterion)."""
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / batch_size


def _to_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def sequence_loss(model: CVAE, frames: torch.Tensor, labels: torch.Tensor, beta: float,
                  teacher_forcing: bool, eps: torch.Tensor | None = None, *,
                  channels_last: bool = False, decode_chunk: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss of one batch of sequences; returns (loss, mse_sum, kl_sum) as 0-d tensors.

    frames, labels: float (B, T, 3, H, W) in [0, 1]. eps: optional (B, T-1, N, H, W)
    reparameterisation noise (drawn here when None). Loss = sum_t MSE_t + beta * sum_t KL_t
    over t = 1..T-1. Every module runs once over the whole batch of frames,
    except in free-running mode, where frame t needs the model's output t-1.
    decode_chunk: decode at most this many frames per call under teacher forcing
    (None: all in one call); see `decode_chunk_frames`.
    """
    B, T = frames.shape[:2]
    # 1) encode all T ground-truth frames and the labels of frames 1..T-1, one call each
    frame_feat = model.frame_transformation(_to_format(frames.flatten(0, 1), channels_last))  # (B*T, F, H, W)
    frame_feat = frame_feat.unflatten(0, (B, T))                                               # (B, T, F, H, W)
    label_feat = model.label_transformation(_to_format(labels[:, 1:].flatten(0, 1), channels_last))  # (B*(T-1), L, H, W)

    # 2) posterior q(z_t | x_t, p_t) for t = 1..T-1 in one call
    flat_eps = None if eps is None else _to_format(eps.flatten(0, 1), channels_last)
    z, mu, logvar = model.Gaussian_Predictor(frame_feat[:, 1:].flatten(0, 1), label_feat, flat_eps)  # (B*(T-1), N, H, W)

    # 3) decode: one call under teacher forcing, a loop over time otherwise
    if teacher_forcing:
        prev_feat = frame_feat[:, :-1].flatten(0, 1)                                 # (B*(T-1), F, H, W)
        x_hat = _decode_in_chunks(model, prev_feat, label_feat, z, decode_chunk).unflatten(0, (B, T - 1))
    else:
        x_hat = _free_running(model, frame_feat[:, 0], label_feat.unflatten(0, (B, T - 1)),
                              z.unflatten(0, (B, T - 1)), channels_last)

    target = frames[:, 1:]                                                           # (B, T-1, 3, H, W)
    # per-frame mean squared error, summed over frames (template: sum of MSELoss per step)
    mse = (x_hat.float() - target.float()).pow(2).mean(dim=(0, 2, 3, 4)).sum()
    kl = kl_divergence(mu, logvar, B)  # = sum over t of the per-step KL (each divided by B)
    return mse + beta * kl, mse, kl


# Bytes of one decoder activation a CPU call may hold before the teacher-forced
# decode is split: bench/train_step.py measured the one-call decode of 30 lab-size
# frames (D_out 192, 32x64: 1.5 MB each) 1.2-1.6x slower than per-step calls on a
# 2-core EPYC (its activations stop fitting in cache), while the demo's 6 frames
# (D_out 64, 16x32) run fastest in one call.
CPU_DECODE_CHUNK_BYTES = 8 * 2**20


def decode_chunk_frames(device: torch.device, d_out_dim: int, height: int, width: int,
                        element_bytes: int = 4) -> int | None:
    """Frames per teacher-forced decoder call: None (all at once) on GPUs, cache-sized on CPUs."""
    if device.type != "cpu":
        return None  # GPUs want the largest batch they can get
    return max(1, CPU_DECODE_CHUNK_BYTES // (d_out_dim * height * width * element_bytes))


def _decode_in_chunks(model: CVAE, prev_feat: torch.Tensor, label_feat: torch.Tensor, z: torch.Tensor,
                      chunk: int | None) -> torch.Tensor:
    """model.decode over the frames in chunks; the same values as one call (the decoder has no BatchNorm)."""
    if chunk is None or chunk >= prev_feat.shape[0]:
        return model.decode(prev_feat, label_feat, z)
    parts = [model.decode(p, l, q) for p, l, q in zip(prev_feat.split(chunk), label_feat.split(chunk), z.split(chunk))]
    return torch.cat(parts)


def _free_running(model: CVAE, first_feat: torch.Tensor, label_feat: torch.Tensor, z: torch.Tensor,
                  channels_last: bool) -> torch.Tensor:
    """Decode t = 1..T-1 from the model's own previous output (x_0 is the given frame).

    first_feat: (B, F, H, W) feature of x_0; label_feat: (B, T-1, L, H, W); z: (B, T-1, N, H, W).
    """
    outputs = []
    prev_feat = first_feat
    for t in range(label_feat.shape[1]):
        x_t = model.decode(prev_feat, label_feat[:, t], z[:, t])                     # (B, 3, H, W)
        outputs.append(x_t)
        if t + 1 < label_feat.shape[1]:
            prev_feat = model.frame_transformation(_to_format(x_t, channels_last))
    return torch.stack(outputs, dim=1)                                               # (B, T-1, 3, H, W)


def sequence_loss_reference(model: CVAE, frames: torch.Tensor, labels: torch.Tensor, beta: float,
                            teacher_forcing: bool, eps: torch.Tensor | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The per-frame loop of the Lab4 template (training_one_step); the oracle for `sequence_loss`."""
    B, T = frames.shape[:2]
    mse = frames.new_zeros((), dtype=torch.float32)
    kl = frames.new_zeros((), dtype=torch.float32)
    x_hat = frames[:, 0]
    for t in range(1, T):
        prev = frames[:, t - 1] if teacher_forcing else x_hat
        prev_feat = model.frame_transformation(prev)
        cur_feat = model.frame_transformation(frames[:, t])
        label_feat = model.label_transformation(labels[:, t])
        step_eps = None if eps is None else eps[:, t - 1]
        z, mu, logvar = model.Gaussian_Predictor(cur_feat, label_feat, step_eps)
        x_hat = model.Generator(model.Decoder_Fusion(prev_feat, label_feat, z))
        mse = mse + torch.nn.functional.mse_loss(x_hat.float(), frames[:, t].float())
        kl = kl + kl_divergence(mu, logvar, B)
    return mse + beta * kl, mse, kl


def generate(model: CVAE, first_frame: torch.Tensor, labels: torch.Tensor,
             z: torch.Tensor | None = None, *, channels_last: bool = False,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Autoregressive prediction from one given frame (no posterior): the validation/test path.

    first_frame: float (B, 3, H, W); labels: float (B, T, 3, H, W) (label 0 is unused);
    z: optional prior noise (B, T-1, N, H, W), else drawn from N(0, I).
    Returns float (B, T, 3, H, W) with frame 0 = first_frame. Call it in eval mode
    under torch.inference_mode; it never syncs with the host.
    """
    B, T = labels.shape[:2]
    H, W = labels.shape[-2:]
    if z is None:
        z = torch.randn((B, T - 1, model.N_dim, H, W), device=first_frame.device, generator=generator)
    # In eval mode BN uses running statistics, so encoding every label in one call is exact.
    label_feat = model.label_transformation(_to_format(labels[:, 1:].flatten(0, 1), channels_last))
    label_feat = label_feat.unflatten(0, (B, T - 1))                                 # (B, T-1, L, H, W)
    first_feat = model.frame_transformation(_to_format(first_frame, channels_last))
    predicted = _free_running(model, first_feat, label_feat, z, channels_last)
    return torch.cat([first_frame.unsqueeze(1), predicted.to(first_frame.dtype)], dim=1)
