"""Shared fixtures for the trainer tests."""
from __future__ import annotations

from typing import Any, Callable

import pytest


def without_times(metrics: dict) -> dict:
    """An epoch's metrics without its wall times (the only keys two identical runs may differ in)."""
    return {k: v for k, v in metrics.items() if not k.endswith("_time_s")}


@pytest.fixture()
def straight_and_resumed(tmp_path):
    """run(fit, make_trainer, cfg, data, split_at, disturb) -> (straight, split, full, resumed).

    `straight`: the epoch metrics of one uninterrupted fit (trainer `full`). `split`: those of
    a run checkpointed after `split_at` epochs, its random state disturbed by `disturb()`, then
    continued by fit from the checkpoint (trainer `resumed`). Wall times are dropped. Works for
    any family's fit and trainer class, on any device the config names."""

    def run(fit: Callable, make_trainer: Callable, cfg: Any, data: Any, split_at: int,
            disturb: Callable[[], Any]) -> tuple[list[dict], list[dict], Any, Any]:
        straight: list[dict] = []
        full = fit(cfg, data, on_epoch=lambda m, t: straight.append(without_times(m)))
        first = make_trainer(cfg, data)
        part1 = [without_times(first.run_epoch()) for _ in range(split_at)]
        first.save_checkpoint(tmp_path / "split.pt")
        del first
        disturb()
        part2: list[dict] = []
        resumed = fit(cfg, data, on_epoch=lambda m, t: part2.append(without_times(m)),
                      resume_from=tmp_path / "split.pt")
        return straight, part1 + part2, full, resumed

    return run
