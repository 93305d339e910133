"""`precision: auto`: the decision table of cvae.core.precision, with the machine injected (issue 13)."""
from __future__ import annotations

import pytest
import torch

import cvae.core.precision as precision
from cvae.core.precision import AVX512_BF16_AUTO, Bf16Support, bf16_support, choose_precision, resolve_precision

NONE = Bf16Support()
AMX = Bf16Support(cpu_amx_bf16=True, cpu_avx512_bf16=True)
AVX512_BF16 = Bf16Support(cpu_avx512_bf16=True)
ARM_BF16 = Bf16Support(cpu_arm_bf16=True)


@pytest.mark.parametrize("device, support, expected", [
    # GPUs: native bf16 only (Ampere+); a T4/V100 (emulated bf16) gets fp32, never fp16
    ("cuda", Bf16Support(cuda_bf16=True), "bf16"),
    ("cuda", Bf16Support(cuda_bf16=False), "fp32"),
    ("cuda", Bf16Support(cuda_bf16=False, cpu_amx_bf16=True), "fp32"),  # the CPU does not matter on a GPU
    # CPUs
    ("cpu", AMX, "bf16"),
    ("cpu", AVX512_BF16, AVX512_BF16_AUTO),  # decided by measurement (bench/results/train_step.avx512bf16.demo.json)
    ("cpu", ARM_BF16, "fp32"),  # not measured
    ("cpu", NONE, "fp32"),  # AVX2 and the rest: bf16 would be emulated
    ("cpu", Bf16Support(cuda_bf16=True), "fp32"),  # a GPU in the box does not make the CPU fast
])
def test_auto_decision_table(device, support, expected) -> None:
    picked, reason = choose_precision(device, support)
    assert picked == expected and reason
    assert picked != "fp16"  # fp16 needs loss scaling: never picked by auto
    assert resolve_precision("auto", torch.device(device), support) == precision.DTYPES[expected]


def test_explicit_precision_is_kept_whatever_the_machine() -> None:
    for name, dtype in precision.DTYPES.items():
        assert resolve_precision(name, torch.device("cpu"), NONE) == dtype
        assert resolve_precision(name, torch.device("cuda"), AMX) == dtype


def test_capabilities_come_from_torch_then_proc_cpuinfo(monkeypatch, tmp_path) -> None:
    here = bf16_support()
    assert here.source in ("torch.cpu.get_capabilities", "/proc/cpuinfo", "none")
    if hasattr(torch.cpu, "get_capabilities"):
        caps = torch.cpu.get_capabilities()
        assert here.source == "torch.cpu.get_capabilities"
        assert here.cpu_avx512_bf16 == bool(caps.get("avx512_bf16"))
        assert here.cpu_amx_bf16 == (bool(caps.get("amx_bf16")) and bool(caps.get("amx_tile", True)))
    # without torch's query: the kernel's flag list
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    fake = tmp_path / "cpuinfo"
    fake.write_text("flags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
    real_path = precision.Path
    monkeypatch.setattr(precision, "Path", lambda p: fake if p == "/proc/cpuinfo" else real_path(p))
    fallback = bf16_support()
    assert fallback.source == "/proc/cpuinfo"
    assert fallback.cpu_avx512_bf16 and not fallback.cpu_amx_bf16 and not fallback.cpu_arm_bf16


def test_cuda_asks_for_native_bf16_only(monkeypatch) -> None:
    asked = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        asked["including_emulation"] = including_emulation
        return including_emulation  # a T4: emulated yes, native no
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    support = bf16_support()
    assert asked == {"including_emulation": False} and support.cuda_bf16 is False
    assert choose_precision("cuda", support)[0] == "fp32"
