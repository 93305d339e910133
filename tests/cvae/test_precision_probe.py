"""`precision: auto` decided by measurement (issue 24, item 1): the rule on constructed timings,
forced choices, the cache and its key, and one real probe per family at tiny dims."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cvae.core import precision_probe as probe
from cvae.core.precision import Bf16Support
from cvae.core.precision_probe import (
    CACHE_ENV,
    PrecisionDecision,
    cache_path,
    decide_precision,
    pick_precision,
    planned_precision,
    probe_key,
)
from cvae.families import get_family

WORKLOAD = {"family": "lab4-2024", "F_dim": 32, "frames": 4, "batch_size": 2}


NATIVE_CPU = Bf16Support(cpu_avx512_bf16=True, source="test")
EMULATED_CPU = Bf16Support(source="test")


@pytest.fixture(autouse=True)
def native_cpu_bf16(monkeypatch):
    """The measuring path on any machine: this CPU reads as one with native bf16 (on an
    AVX2-only CPU `auto` would otherwise pick fp32 without measuring; tested apart below)."""
    monkeypatch.setattr(probe, "bf16_support", lambda: NATIVE_CPU)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


class CountingTimer:
    """An injected measurement: fixed timings, and how often it was asked."""

    def __init__(self, fp32: list[float], bf16: list[float]) -> None:
        self.timings = {"fp32": fp32, "bf16": bf16}
        self.calls = 0

    def __call__(self) -> dict[str, list[float]]:
        self.calls += 1
        return self.timings


def key(**changes) -> dict:
    return {**probe_key("cpu", 2, WORKLOAD), **changes}


# --- the rule --------------------------------------------------------------------------
@pytest.mark.parametrize("fp32, bf16, expected", [
    ([1.0, 1.01, 0.99], [0.45, 0.46, 0.44], "bf16"),    # 2.2x faster, tight spread
    ([1.0, 1.01, 0.99], [1.10, 1.12, 1.11], "fp32"),    # bf16 slower
    ([1.0, 1.01, 0.99], [0.97, 0.96, 0.98], "fp32"),    # 3% faster: under the 5% floor
    ([1.0, 1.3, 0.8], [0.85, 0.86, 0.84], "fp32"),      # 15% faster, but the fp32 steps spread 50%
    ([1.0, 1.02, 0.98], [0.85, 0.86, 0.84], "bf16"),    # the same 15% with a 4% spread
])
def test_rule_picks_bf16_only_beyond_the_noise(fp32, bf16, expected) -> None:
    decision = pick_precision({"fp32": fp32, "bf16": bf16})
    assert decision.precision == expected and decision.source == "measured"
    assert decision.fp32_s == pytest.approx(sorted(fp32)[1]) and decision.bf16_s == pytest.approx(sorted(bf16)[1])


def test_the_printed_decision_says_how_it_was_reached() -> None:
    faster = pick_precision({"fp32": [1.0, 1.0, 1.0], "bf16": [0.45, 0.45, 0.45]})
    assert faster.describe() == "bf16 (measured 2.2x faster than fp32 here)"
    slower = pick_precision({"fp32": [0.9, 0.9, 0.9], "bf16": [1.0, 1.0, 1.0]})
    assert slower.describe() == "fp32 (bf16 measured 0.9x of fp32 here)"
    noisy = pick_precision({"fp32": [1.0, 1.0, 1.0], "bf16": [0.97, 0.97, 0.97]})
    assert noisy.describe() == "fp32 (bf16 measured 1x of fp32 here, within noise: measured again next time)"
    assert faster.conclusive and slower.conclusive and not noisy.conclusive
    assert PrecisionDecision("bf16", "forced").describe() == "bf16 (forced)"


@pytest.mark.parametrize("fp32, bf16", [
    ([1.0, 1.01, 0.99], [0.97, 0.96, 0.98]),   # 3% faster: under the floor
    ([1.0, 1.3, 0.8], [1.2, 1.2, 1.2]),        # 20% slower, but within the 50% spread
])
def test_an_answer_within_noise_runs_fp32_and_is_measured_again(fp32, bf16, tmp_path: Path) -> None:
    cache = tmp_path / "precision.json"
    timer = CountingTimer(fp32, bf16)
    first = decide_precision("auto", key=key(), measure=timer, cache=cache)
    assert (first.precision, first.conclusive) == ("fp32", False)
    [entry] = json.loads(cache.read_text())["entries"]  # recorded, with its timings ...
    assert entry["conclusive"] is False and entry["timings"]["bf16"] == bf16
    assert planned_precision("auto", key=key(), cache=cache).source == "pending"  # ... but it answers nothing
    second = decide_precision("auto", key=key(), measure=timer, cache=cache)
    assert (second.source, timer.calls) == ("measured", 2)


def test_missing_timings_name_the_precision() -> None:
    with pytest.raises(ValueError, match="no bf16 steps"):
        pick_precision({"fp32": [1.0]})


# --- forced, cached, re-probed ----------------------------------------------------------------
@pytest.mark.parametrize("forced", ["fp32", "bf16", "fp16"])
def test_a_forced_precision_runs_no_probe(forced, tmp_path: Path) -> None:
    timer = CountingTimer([1.0], [0.1])
    decision = decide_precision(forced, key=key(), measure=timer, cache=tmp_path / "c.json")
    assert (decision.precision, decision.source, timer.calls) == (forced, "forced", 0)
    assert decision.describe() == f"{forced} (forced)"
    assert not (tmp_path / "c.json").exists()


def test_the_cache_answers_the_second_call_without_timing(tmp_path: Path) -> None:
    cache = tmp_path / "sub" / "precision.json"
    timer = CountingTimer([1.0, 1.01, 0.99], [0.45, 0.46, 0.44])
    first = decide_precision("auto", key=key(), measure=timer, cache=cache)
    assert (first.precision, first.source, timer.calls) == ("bf16", "measured", 1)
    assert cache.is_file()
    second = decide_precision("auto", key=key(), measure=timer, cache=cache)
    assert (second.precision, second.source, timer.calls) == ("bf16", "cached", 1)
    assert second.describe() == "bf16 (measured 2.2x faster than fp32 here, cached)"
    # the dry run's view reads the same entry and never times
    assert planned_precision("auto", key=key(), cache=cache).describe() == second.describe()
    assert timer.calls == 1


@pytest.mark.parametrize("change", [
    {"threads": 1}, {"torch": "0.0.0"}, {"cpu": "Another CPU"}, {"device": "cuda:NVIDIA H100"},
    "other bf16 flags",
    {"workload": {**WORKLOAD, "F_dim": 128}}, {"workload": {**WORKLOAD, "batch_size": 4}},
])
def test_any_change_in_the_key_probes_again(change, tmp_path: Path) -> None:
    if change == "other bf16 flags":  # the opposite of this machine's flags, whatever they are
        change = {"bf16_flags": {flag: not has for flag, has in key()["bf16_flags"].items()}}
    cache = tmp_path / "precision.json"
    timer = CountingTimer([1.0, 1.0, 1.0], [0.4, 0.4, 0.4])
    decide_precision("auto", key=key(), measure=timer, cache=cache)
    changed = key(**change)
    assert changed != key()
    assert planned_precision("auto", key=changed, cache=cache).source == "pending"
    decision = decide_precision("auto", key=changed, measure=timer, cache=cache)
    assert (decision.source, timer.calls) == ("measured", 2)
    # both answers are kept: the first key is still a cache hit
    assert decide_precision("auto", key=key(), measure=timer, cache=cache).source == "cached"
    assert len(json.loads(cache.read_text())["entries"]) == 2


def test_the_key_holds_the_machine_and_software(restore_threads) -> None:
    k = probe_key("cpu", 3, WORKLOAD)
    assert k["threads"] == 3 and k["torch"] == torch.__version__ and k["device"] == "cpu"
    assert k["cpu"] and set(k["bf16_flags"]) == {"amx_bf16", "avx512_bf16", "arm_bf16"}
    assert k["workload"] == WORKLOAD


def test_a_damaged_cache_file_is_probed_over(tmp_path: Path) -> None:
    cache = tmp_path / "precision.json"
    cache.write_text("{not json")
    timer = CountingTimer([1.0, 1.0, 1.0], [0.4, 0.4, 0.4])
    assert decide_precision("auto", key=key(), measure=timer, cache=cache).source == "measured"
    assert json.loads(cache.read_text())["version"] == probe.CACHE_VERSION


def test_a_failing_probe_falls_back_to_the_flag_rule_and_says_why(tmp_path: Path) -> None:
    def broken() -> dict:
        raise RuntimeError("out of memory")

    decision = decide_precision("auto", key=key(), measure=broken, cache=tmp_path / "c.json")
    assert decision.source == "fallback" and decision.precision in ("fp32", "bf16")
    assert "the probe failed (RuntimeError: out of memory)" in decision.describe()
    assert "flag rule" in decision.describe()
    assert not (tmp_path / "c.json").exists()  # nothing measured: nothing cached


def test_cache_location_follows_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine.json"))
    assert cache_path() == tmp_path / "mine.json"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_path() == tmp_path / "xdg" / "cvae-search" / "precision.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_path() == Path.home() / ".cache" / "cvae-search" / "precision.json"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the GPU path of the probe)")
@pytest.mark.parametrize("name", ["lab4-2024", "bair-2023"])
def test_cuda_probe_decides_between_native_bf16_and_fp32(name: str, tmp_path: Path) -> None:
    family = get_family(name)
    cfg = family.config_from_dict({**(TINY_LAB4 if name == "lab4-2024" else TINY_BAIR), "precision": "auto"})
    cache = tmp_path / "c.json"
    decision = family.decide_precision(cfg, "cuda", 1, cache=cache)
    if not torch.cuda.is_bf16_supported(including_emulation=False):
        # a T4 or V100: fp32 with nothing timed
        assert decision.describe().startswith("fp32 (the GPU has no native bf16") and decision.fp32_s is None
        return
    assert decision.source == "measured" and decision.precision in ("fp32", "bf16")
    assert decision.fp32_s > 0 and decision.bf16_s > 0
    [entry] = json.loads(cache.read_text())["entries"]
    assert entry["key"]["device"].startswith("cuda:") and entry["key"]["workload"]["family"] == name
    again = family.decide_precision(cfg, "cuda", 1, cache=cache)
    assert again.source == ("cached" if decision.conclusive else "measured")


# --- a real probe per family ---------------------------------------------------------------
TINY_LAB4 = dict(batch_size=2, frame_H=8, frame_W=16, F_dim=8, L_dim=4, N_dim=4, D_out_dim=8, train_vi_len=3,
                 val_vi_len=4)
TINY_BAIR = dict(batch_size=2, g_dim=8, z_dim=2, rnn_size=8, width=0.0625, n_past=2, n_future=2,
                 predictor_rnn_layers=1, val_batch_size=2)


@pytest.mark.parametrize("name, values", [("lab4-2024", TINY_LAB4), ("bair-2023", TINY_BAIR)])
def test_a_real_probe_decides_and_caches(name, values, tmp_path: Path, restore_threads) -> None:
    import random

    family = get_family(name)
    cfg = family.config_from_dict({**values, "precision": "auto"})
    cache = tmp_path / "precision.json"
    torch.set_num_threads(2)
    random.seed(7)
    expected_draw = random.random()
    random.seed(7)
    assert family.planned_precision(cfg, "cpu", 1, cache=cache).source == "pending"
    decision = family.decide_precision(cfg, "cpu", 1, cache=cache)
    assert decision.source == "measured" and decision.precision in ("fp32", "bf16")
    assert decision.fp32_s > 0 and decision.bf16_s > 0
    assert torch.get_num_threads() == 2  # the probe ran on 1 thread and gave the caller its count back
    assert random.random() == expected_draw  # nor did it move the caller's RNG
    [entry] = json.loads(cache.read_text())["entries"]
    assert entry["key"]["workload"]["family"] == name and entry["key"]["threads"] == 1
    assert len(entry["timings"]["fp32"]) == probe.TIMED_STEPS == len(entry["timings"]["bf16"])
    again = family.decide_precision(cfg, "cpu", 1, cache=cache)
    # a conclusive answer comes from the cache; one within noise is measured again
    assert again.source == ("cached" if decision.conclusive else "measured")
    if decision.conclusive:
        assert again.precision == decision.precision
    forced = family.decide_precision(cfg.replace(precision="fp32"), "cpu", 1, cache=cache)
    assert forced.describe() == "fp32 (forced)"


# --- where bf16 would be emulated, nothing is measured --------------------------------------
def test_a_cpu_without_native_bf16_runs_fp32_without_measuring(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(probe, "bf16_support", lambda: EMULATED_CPU)
    cache = tmp_path / "precision.json"
    timer = CountingTimer([1.0, 1.0, 1.0], [0.1, 0.1, 0.1])  # would say bf16 if it were asked
    decision = decide_precision("auto", key=key(), measure=timer, device="cpu", cache=cache)
    assert timer.calls == 0 and not cache.exists()
    assert (decision.precision, decision.source) == ("fp32", "fallback")
    assert "no native bf16" in decision.describe() and "nothing to measure" in decision.describe()
    # a forced bf16 is still honoured
    assert decide_precision("bf16", key=key(), measure=timer, cache=cache).describe() == "bf16 (forced)"


def test_a_real_run_on_an_emulated_cpu_plans_and_decides_fp32_at_once(monkeypatch, tmp_path: Path) -> None:
    def no_timing(*args, **kwargs):
        raise AssertionError("an emulated CPU must not time any step")

    monkeypatch.setattr(probe, "bf16_support", lambda: EMULATED_CPU)
    monkeypatch.setattr(probe, "time_steps", no_timing)
    family = get_family("lab4-2024")
    cfg = family.config_from_dict({**TINY_LAB4, "precision": "auto"})
    cache = tmp_path / "c.json"
    planned = family.planned_precision(cfg, "cpu", 1, cache=cache)
    decided = family.decide_precision(cfg, "cpu", 1, cache=cache)
    assert planned.describe() == decided.describe() and decided.precision == "fp32"
    assert decided.source == "fallback" and not cache.exists()
    # with native bf16 the same run plans a measurement
    monkeypatch.setattr(probe, "bf16_support", lambda: NATIVE_CPU)
    assert family.planned_precision(cfg, "cpu", 1, cache=cache).source == "pending"


def test_a_family_without_a_probe_falls_back(tmp_path: Path) -> None:
    class NoProbe:
        def probe_workload(self, cfg):
            raise NotImplementedError("model family 'x' has no precision probe (probe_workload)")

    cfg = get_family("lab4-2024").config_from_dict({**TINY_LAB4, "precision": "auto"})
    decision = probe.decide_run_precision(NoProbe(), cfg, "cpu", 1, cache=tmp_path / "c.json")
    assert decision.source == "fallback" and "has no precision probe" in decision.describe()
