"""The batched training step against the template's per-frame loop (the oracle)."""
from __future__ import annotations

import pytest
import torch

from cvae.families.lab4_2024.model import CVAE
from cvae.families.lab4_2024.step import generate, kl_divergence, sequence_loss, sequence_loss_reference

torch.set_num_threads(1)

B, T, H, W = 2, 4, 8, 12
DIMS = (16, 8, 4, 16)


def _setup(seed: int = 0) -> tuple[CVAE, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = CVAE(*DIMS, "sigmoid")
    frames = torch.rand(B, T, 3, H, W)
    labels = torch.rand(B, T, 3, H, W)
    eps = torch.randn(B, T - 1, DIMS[2], H, W)
    return model, frames, labels, eps


def _loss_and_grads(fn, model: CVAE, frames, labels, eps, teacher_forcing: bool):
    model.zero_grad()
    loss, mse, kl = fn(model, frames, labels, 0.3, teacher_forcing, eps)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return loss.detach(), mse.detach(), kl.detach(), grads


def _batch_norms(model: CVAE) -> list[torch.nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def _give_bn_running_stats(model: CVAE) -> None:
    # Non-trivial running statistics so eval-mode BN is not a no-op.
    for bn in _batch_norms(model):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)


@pytest.mark.parametrize("teacher_forcing", [True, False])
def test_batched_equals_reference_loss_and_gradients(teacher_forcing: bool) -> None:
    model, frames, labels, eps = _setup()
    _give_bn_running_stats(model)
    model.eval()  # BN on running statistics: the two paths compute the same function
    ref = _loss_and_grads(sequence_loss_reference, model, frames, labels, eps, teacher_forcing)
    got = _loss_and_grads(sequence_loss, model, frames, labels, eps, teacher_forcing)
    for a, b in zip(got[:3], ref[:3]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for name, g in ref[3].items():
        torch.testing.assert_close(got[3][name], g, rtol=1e-4, atol=1e-6, msg=name)
    assert any(g.abs().sum() > 0 for g in ref[3].values())


@pytest.mark.parametrize("teacher_forcing", [True, False])
def test_in_train_mode_only_batch_norm_differs(teacher_forcing: bool) -> None:
    model, frames, labels, eps = _setup(1)
    # Labels whose statistics change along the sequence, so per-step and whole-sequence BN differ.
    labels = labels * torch.linspace(0.1, 1.0, T).view(1, T, 1, 1, 1)
    model.train()
    # BN on batch statistics: batched normalises over B*(T-1) label frames, the loop over B per step.
    ref = _loss_and_grads(sequence_loss_reference, model, frames, labels, eps, teacher_forcing)
    got = _loss_and_grads(sequence_loss, model, frames, labels, eps, teacher_forcing)
    bn_weight = "label_transformation.2.weight"
    rel = (got[3][bn_weight] - ref[3][bn_weight]).norm() / ref[3][bn_weight].norm()
    assert rel > 0.05
    assert (got[0] - ref[0]).abs() > 1e-4 * ref[0].abs()
    # Everything else in train mode: identical once BN alone is switched to running statistics.
    for bn in _batch_norms(model):
        bn.eval()
    ref = _loss_and_grads(sequence_loss_reference, model, frames, labels, eps, teacher_forcing)
    got = _loss_and_grads(sequence_loss, model, frames, labels, eps, teacher_forcing)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-6)
    for name, g in ref[3].items():
        torch.testing.assert_close(got[3][name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_loss_is_mse_plus_beta_kl_and_returns_tensors() -> None:
    model, frames, labels, eps = _setup(2)
    loss, mse, kl = sequence_loss(model, frames, labels, 0.25, True, eps)
    assert all(isinstance(x, torch.Tensor) and x.dim() == 0 for x in (loss, mse, kl))
    torch.testing.assert_close(loss, mse + 0.25 * kl)
    assert mse.item() > 0 and kl.item() >= 0


def test_kl_divergence_of_standard_normal_is_zero_and_known_value() -> None:
    mu = torch.zeros(2, 3, 4, 4)
    assert kl_divergence(mu, torch.zeros_like(mu), 2).item() == pytest.approx(0.0)
    # mu = 1, logvar = 0: each element contributes 0.5; 96 elements / batch 2 = 24
    assert kl_divergence(torch.ones_like(mu), torch.zeros_like(mu), 2).item() == pytest.approx(24.0)


def test_free_running_matches_generate_with_posterior_z() -> None:
    # Free-running training feeds the model its own outputs: with the posterior z it must
    # predict exactly what `generate` (the validation path) predicts from that same z.
    model, frames, labels, eps = _setup(3)
    model.eval()
    with torch.no_grad():
        z = model.Gaussian_Predictor(model.frame_transformation(frames[:, 1:].flatten(0, 1)),
                                     model.label_transformation(labels[:, 1:].flatten(0, 1)),
                                     eps.flatten(0, 1))[0].unflatten(0, (B, T - 1))
        pred = generate(model, frames[:, 0], labels, z)
        _, mse, _ = sequence_loss(model, frames, labels, 0.0, False, eps)
    expected = (pred[:, 1:] - frames[:, 1:]).pow(2).mean(dim=(0, 2, 3, 4)).sum()
    torch.testing.assert_close(mse, expected, rtol=1e-5, atol=1e-6)


def test_generate_shapes_and_given_first_frame() -> None:
    model, frames, labels, _ = _setup(4)
    model.eval()
    with torch.inference_mode():
        out = generate(model, frames[:, 0], labels)
    assert out.shape == (B, T, 3, H, W)
    torch.testing.assert_close(out[:, 0], frames[:, 0])
    assert out[:, 1:].min() >= 0 and out[:, 1:].max() <= 1  # sigmoid output


def test_channels_last_gives_same_loss() -> None:
    model, frames, labels, eps = _setup(5)
    model.eval()
    ref = sequence_loss(model, frames, labels, 0.5, False, eps)[0]
    model = model.to(memory_format=torch.channels_last)
    got = sequence_loss(model, frames, labels, 0.5, False, eps, channels_last=True)[0]
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_chunked_teacher_forced_decode_gives_same_loss_and_gradients(chunk: int) -> None:
    # The decoder has no BatchNorm, so splitting its call over frames changes nothing
    # but the summation order (the label encoder, which has BN, still runs once).
    model, frames, labels, eps = _setup(3)
    one_call = _loss_and_grads(sequence_loss, model, frames, labels, eps, True)
    chunked = _loss_and_grads(lambda *a: sequence_loss(*a, decode_chunk=chunk), model, frames, labels, eps, True)
    assert B * (T - 1) > chunk  # the decode really is split
    torch.testing.assert_close(chunked[0], one_call[0], rtol=1e-5, atol=1e-6)
    for name, grad in one_call[3].items():
        torch.testing.assert_close(chunked[3][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_decode_chunk_frames_splits_large_frames_on_cpu_only() -> None:
    from cvae.families.lab4_2024.step import CPU_DECODE_CHUNK_BYTES, decode_chunk_frames

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    lab = decode_chunk_frames(cpu, 192, 32, 64)          # 1.5 MB per frame -> a few frames per call
    assert lab is not None and 1 <= lab < 30 and lab * 192 * 32 * 64 * 4 <= CPU_DECODE_CHUNK_BYTES
    assert decode_chunk_frames(cpu, 64, 16, 32) >= 6     # the demo's 2 x 3 frames: one call
    assert decode_chunk_frames(cpu, 192, 32, 64, element_bytes=2) == 2 * lab  # bf16 halves the bytes
    assert decode_chunk_frames(cpu, 10_000, 512, 512) == 1  # never zero
    assert decode_chunk_frames(gpu, 192, 32, 64) is None
