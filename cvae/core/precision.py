"""Precision names and dtypes, and the flag rule: `precision: auto` from what the hardware
does natively.

`precision: auto` is decided by measurement where a run starts (`python -m cvae.train`,
the search's driver): cvae/core/precision_probe.py times the trainer's step in fp32 and
bf16 here. The rule below is its fallback where no probe can run, and what a Trainer
built directly with `auto` applies; the trainer, `cvae.predict` and the benchmarks call
`resolve_precision`.
`bf16_support()` reads the capabilities; `choose_precision` is the decision
table, a pure function so a test can inject any machine:

| device | capability                                          | auto  | measured                         |
|--------|-----------------------------------------------------|-------|----------------------------------|
| cuda   | native bf16 (`is_bf16_supported(including_emulation=False)`: Ampere and later) | bf16 | H100, lab dims: step 32 vs 80 ms (NCHW, tf on), epoch 1.3 vs 3.7 s (bench/results/gpu*.json) |
| cuda   | no native bf16 (T4, V100: bf16 would be emulated)   | fp32  |                                  |
| cpu    | AMX tiles with bf16 (Sapphire Rapids and later)     | bf16  | 2.9x the fp32 step (Xeon, lab dims) |
| cpu    | avx512_bf16 without AMX (Cooper Lake, Zen 4)        | fp32 (`AVX512_BF16_AUTO`) | not faster: step 0.94x tf on, 1.29x tf off (EPYC, demo dims) |
| cpu    | Arm bf16 (neon/SVE bf16)                            | fp32  | not measured: fp32 until a machine shows bf16 faster |
| cpu    | none of these (AVX2: bf16 emulated, ~5x slower)     | fp32  | 5x slower step (EPYC, AVX2)      |

Generation (validation, `cvae.predict`) runs in fp32 whatever the training
precision (`GENERATION_DTYPE`): the autoregressive loop feeds each predicted
frame back in, 630 times at lab length, and bf16's step of 2^-8 near 1 would
drift val_psnr and submission.csv away from the template's fp32 numbers.
Batch-1 generation is launch-bound on a GPU, so fp32 costs it little
(bench/gpu.py measures both).

fp16 is never picked by `auto`: it needs loss scaling (the trainer applies it
for `precision: fp16`) and its narrow range can overflow; on a GPU without
native bf16 (T4, V100) set `precision: fp16` by hand to use its tensor cores.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}
GENERATION_DTYPE = torch.float32  # validation and prediction (see the module doc)

# CPUs with avx512_bf16 but no AMX: on a 2-core AMD EPYC with avx512_bf16 (1 thread,
# demo dims, bench/results/train_step.avx512bf16.demo.json) the bf16 matmul peak is
# ~3x fp32's, but the trainer's bf16 step took 0.94x the fp32 step's time with
# teacher forcing on and 1.29x with it off, and its validation pass was no faster
# (1.27 s vs 1.30 s for 64 frames): bf16 was not measured faster, so auto keeps fp32 there. Flip this
# when a machine measures bf16 faster (bench/train_step.py records the
# capabilities, what auto picks and both timings under `precision_rule`).
AVX512_BF16_AUTO = "fp32"


@dataclass(frozen=True)
class Bf16Support:
    """Which native bf16 paths a machine has (emulated bf16 counts as none)."""
    cpu_amx_bf16: bool = False  # AMX tiles with bf16 (Sapphire Rapids and later Xeons)
    cpu_avx512_bf16: bool = False  # AVX-512 bf16 dot products (Cooper Lake, Zen 4)
    cpu_arm_bf16: bool = False  # Arm bf16 instructions (neon bf16 or SVE bf16)
    cuda_bf16: Optional[bool] = None  # native on the current CUDA device; None without CUDA
    source: str = "none"  # where the CPU flags came from: torch.cpu.get_capabilities | /proc/cpuinfo | none

    @property
    def cpu_native(self) -> bool:
        """Whether the CPU computes bf16 natively (native is not the same as faster)."""
        return self.cpu_amx_bf16 or self.cpu_avx512_bf16 or self.cpu_arm_bf16

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cpu_flags() -> tuple[dict[str, bool], str]:
    """CPU flags from torch's own capability query, else /proc/cpuinfo (Linux), else none."""
    get = getattr(torch.cpu, "get_capabilities", None)
    if get is not None:
        try:
            caps = dict(get())
            return ({"amx_bf16": bool(caps.get("amx_bf16")) and bool(caps.get("amx_tile", True)),
                     "avx512_bf16": bool(caps.get("avx512_bf16")),
                     "arm_bf16": bool(caps.get("bf16")) or bool(caps.get("sve_bf16"))},
                    "torch.cpu.get_capabilities")
        except Exception:  # an old or odd build: fall back to the kernel's list
            pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}, "none"
    words = set(text.split())
    return ({"amx_bf16": "amx_bf16" in words, "avx512_bf16": "avx512_bf16" in words,
             "arm_bf16": "bf16" in words}, "/proc/cpuinfo")


def bf16_support() -> Bf16Support:
    """This machine's native bf16 paths (cheap; asks CUDA only when it is available)."""
    flags, source = _cpu_flags()
    cuda = None
    if torch.cuda.is_available():
        cuda = bool(torch.cuda.is_bf16_supported(including_emulation=False))
    return Bf16Support(cpu_amx_bf16=flags.get("amx_bf16", False), cpu_avx512_bf16=flags.get("avx512_bf16", False),
                       cpu_arm_bf16=flags.get("arm_bf16", False), cuda_bf16=cuda, source=source)


def choose_precision(device_type: str, support: Bf16Support) -> tuple[str, str]:
    """(precision, reason) that `auto` resolves to on `device_type` ("cpu" | "cuda")."""
    # 1) GPUs: bf16 only where the tensor cores do it natively
    if device_type == "cuda":
        if support.cuda_bf16:
            return "bf16", "the GPU has native bf16"
        return "fp32", "the GPU has no native bf16 (it would be emulated); fp16 is never auto-picked"
    # 2) CPUs with AMX: bf16 measured ~3x faster
    if support.cpu_amx_bf16:
        return "bf16", "the CPU has AMX bf16 tiles"
    # 3) AVX-512 bf16 without AMX: native, but decided by measurement
    if support.cpu_avx512_bf16:
        return AVX512_BF16_AUTO, f"avx512_bf16 without AMX: {AVX512_BF16_AUTO} measured faster on such a CPU"
    # 4) Arm bf16: native, never measured here
    if support.cpu_arm_bf16:
        return "fp32", "Arm bf16 is not measured yet; fp32 until a machine shows bf16 faster"
    # 5) everything else emulates bf16
    return "fp32", "the CPU has no native bf16 (it would be emulated)"


def resolve_precision(precision: str, device: torch.device | str, support: Bf16Support | None = None
                      ) -> torch.dtype:
    """The dtype a run computes in: `precision` itself, or what `auto` resolves to on `device`."""
    if precision != "auto":
        return DTYPES[precision]
    device = torch.device(device)
    name, _ = choose_precision(device.type, support if support is not None else bf16_support())
    return DTYPES[name]
