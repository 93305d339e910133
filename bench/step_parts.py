"""The generic pieces of a CVAE training-step benchmark: the dims measured at (Dims, LAB,
SMOKE), a step variant (Variant) and the model + optimizer that runs it (StepRunner) on a
fixed batch (make_batch), the step's FLOPs counted on the meta device, the matmul peak a
step is measured against, and one validation pass timed. bench/train_step.py (the CPU
table) and bench/gpu_sections.py (the GPU run) both build on them; they live apart from
bench/train_step.py so that the GPU benchmark does not import another script, and so that
train_step.py holds one job: running its own benchmark and reporting it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from bench.common import median, time_once
from cvae.core.training import optimizer_device_options
from cvae.families.lab4_2024.model import CVAE
from cvae.families.lab4_2024.step import decode_chunk_frames, generate, sequence_loss, sequence_loss_reference


@dataclass(frozen=True)
class Dims:
    name: str
    F: int
    L: int
    N: int
    D: int
    H: int
    W: int
    batch: int
    frames: int       # train_vi_len
    val_frames: int   # val_vi_len

    @property
    def predicted_frames(self) -> int:
        """Frames one training step predicts: batch x (T - 1)."""
        return self.batch * (self.frames - 1)


@dataclass(frozen=True)
class Variant:
    name: str
    reference: bool        # per-frame loop (template) instead of the batched step
    channels_last: bool
    dtype: torch.dtype
    compile: bool = False
    chunked: bool = False  # teacher-forced decode in cache-sized chunks on CPU (what the trainer does)
    compile_mode: str | None = None  # torch.compile's mode (None: default; "reduce-overhead": CUDA graphs)


LAB = Dims("lab", 128, 32, 12, 192, 32, 64, 2, 16, 630)
SMOKE = Dims("smoke", 16, 8, 4, 16, 8, 16, 2, 4, 8)
# The trainer's own step on a CPU: batched, channels_last, chunked teacher-forced decode, fp32.
TRAINER_STEP = Variant("batched_cl_chunked", False, True, torch.float32, chunked=True)


# --- one training step -------------------------------------------------------

def _autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class StepRunner:
    """A model + Adam optimizer for one variant, and its training step on fixed data."""

    def __init__(self, variant: Variant, dims: Dims, init_state: dict[str, torch.Tensor],
                 batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], device: torch.device) -> None:
        self.variant, self.device = variant, device
        self.model = CVAE(dims.F, dims.L, dims.N, dims.D).to(device)
        self.model.load_state_dict(init_state)  # every variant starts from the same weights
        if variant.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if variant.compile:
            for module in self.model.children():
                module.compile(mode=variant.compile_mode)
        self.model.train()
        # The template's plain Adam for its loop; the trainer's (fused on CUDA) for the batched steps.
        options = {} if variant.reference else optimizer_device_options("Adam", device.type)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4, **options)
        # The per-frame loop gets NCHW frames as the template does; with a channels_last
        # model its convs still run (and return) channels_last.
        self.frames, self.labels, self.eps = batch
        dtype_bytes = torch.finfo(variant.dtype).bits // 8
        self.decode_chunk = (decode_chunk_frames(device, dims.D, dims.H, dims.W, dtype_bytes)
                             if variant.chunked else None)

    def loss(self, teacher_forcing: bool) -> torch.Tensor:
        with _autocast(self.device, self.variant.dtype):
            if self.variant.reference:
                loss, _, _ = sequence_loss_reference(self.model, self.frames, self.labels, 1.0,
                                                     teacher_forcing, self.eps)
            else:
                loss, _, _ = sequence_loss(self.model, self.frames, self.labels, 1.0, teacher_forcing,
                                           self.eps, channels_last=self.variant.channels_last,
                                           decode_chunk=self.decode_chunk)
        return loss

    def step(self, teacher_forcing: bool) -> None:
        # No .item() and no host sync: clip_grad_norm_ stays on the device.
        self.optimizer.zero_grad(set_to_none=True)
        self.loss(teacher_forcing).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()


def make_batch(dims: Dims, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shape = (dims.batch, dims.frames, 3, dims.H, dims.W)
    frames = torch.rand(shape, generator=gen)                                          # (B, T, 3, H, W)
    labels = torch.rand(shape, generator=gen)                                          # (B, T, 3, H, W)
    eps = torch.randn((dims.batch, dims.frames - 1, dims.N, dims.H, dims.W), generator=gen)  # (B, T-1, N, H, W)
    return frames.to(device), labels.to(device), eps.to(device)


# --- FLOP counting -------------------------------------------------------------

def count_step_flops(dims: Dims, reference: bool, teacher_forcing: bool) -> int:
    """Forward + backward FLOPs of one step, counted on the meta device (no real compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    meta = torch.device("meta")
    model = CVAE(dims.F, dims.L, dims.N, dims.D).to(meta).train()
    frames, labels, eps = (torch.empty(t.shape, device=meta) for t in make_batch(dims, torch.device("cpu")))
    fn = sequence_loss_reference if reference else sequence_loss
    with FlopCounterMode(display=False) as counter:
        loss, _, _ = fn(model, frames, labels, 1.0, teacher_forcing, eps)
        loss.backward()
    return int(counter.get_total_flops())


# --- the machine's limit -----------------------------------------------------

def matmul_peak(dtype: torch.dtype, n: int, reps: int, device: torch.device, back_to_back: int = 1
                ) -> dict[str, Any]:
    """FLOP/s of `back_to_back` n^3 products queued together, from the fastest of `reps` timings.

    A peak is the best the machine reached: on a shared machine a median of 5
    takes in timings slowed by other jobs (a 2-thread median once came out below
    the 1-thread one). The median's FLOP/s is kept beside it.

    On a GPU one product is too short to time alone (an 8192^3 bf16 product takes
    ~1.4 ms on an H100, a 2048^3 one about the launch overhead): queue several
    and time them as one. fp32 runs with whatever TF32 setting is in force; the
    benchmarks set the trainer's (cvae.core.cuda: TF32 off) before measuring, so the
    peak and the steps' convs compute alike.
    """
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)

    def products() -> None:
        for _ in range(back_to_back):
            a @ b

    time_once(products, device)  # warm-up (cuBLAS handle, heuristics)
    times = [time_once(products, device) / back_to_back for _ in range(reps)]
    return {"n": n, "back_to_back": back_to_back, "times_s": times, "median_s": median(times),
            "flops_per_s": 2 * n ** 3 / min(times), "median_flops_per_s": 2 * n ** 3 / median(times),
            "tf32": bool(dtype == torch.float32 and device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32)}


# --- validation ---------------------------------------------------------------

def time_validation(dims: Dims, init_state: dict[str, torch.Tensor], device: torch.device,
                    channels_last: bool, dtype: torch.dtype, val_frames: int) -> dict[str, Any]:
    """One autoregressive pass (batch 1, z ~ N(0, I)) in inference mode, as the trainer validates."""
    model = CVAE(dims.F, dims.L, dims.N, dims.D).to(device)
    model.load_state_dict(init_state)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.eval()
    gen = torch.Generator().manual_seed(1)
    first = torch.rand((1, 3, dims.H, dims.W), generator=gen).to(device)
    labels = torch.rand((1, val_frames, 3, dims.H, dims.W), generator=gen).to(device)

    def run(n: int) -> None:
        with torch.inference_mode(), _autocast(device, dtype):
            generate(model, first, labels[:, :n], channels_last=channels_last)

    time_once(lambda: run(min(4, val_frames)), device)  # warm-up: primitive creation
    seconds = time_once(lambda: run(val_frames), device)
    return {"frames": val_frames, "time_s": seconds, "frames_per_s": (val_frames - 1) / seconds}
