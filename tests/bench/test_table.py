"""bench/table.py's reading of the searches' own curves (bench/efficiency.py's results files)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.table import kl_type, load_curves  # noqa: E402


def _rows(trial: str, config: dict, values: list[float]) -> list[dict]:
    return [{"trial_id": trial, "epoch": e, "val_psnr": v, "config": config} for e, v in enumerate(values, start=1)]


def test_load_curves_keeps_full_curves_once_with_every_source(tmp_path: Path) -> None:
    same = [20.0, 25.0, 30.0]
    raw = {"grid": _rows("g0", {"kl_anneal_type": "Without"}, same),
           "ours": {"0": _rows("a", {"kl_anneal_type": "Monotonic"}, [1.0, 2.0, 3.0])
                    + _rows("b", {"kl_anneal_type": "Cyclic"}, [5.0, 6.0])},   # stopped at epoch 2: not full
           "random": {"0": _rows("c", {"kl_anneal_type": "None"}, same)}}      # the grid's curve again
    path = tmp_path / "efficiency.json"
    path.write_text(json.dumps({"raw": raw}))
    curves, copies = load_curves([path], max_t=3)
    assert len(copies) == 3 and len(curves) == 2
    by_final = {c.final: c for c in curves}
    assert by_final[30.0].sources == ["efficiency.json:random:0:c", "efficiency.json:grid:-:g0"]
    assert by_final[30.0].kl == "None" and by_final[3.0].kl == "Monotonic"


def test_kl_type_names_aliases_canonically_and_defaults_to_cyclical() -> None:
    assert kl_type({"kl_anneal_type": "Cyclic"}) == "Cyclical" and kl_type({"kl_anneal_type": "Without"}) == "None"
    assert kl_type({}) == "Cyclical"
