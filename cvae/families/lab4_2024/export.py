"""The Lab4 2024 template's checkpoint format, both ways: export for its Tester, and
read one its Trainer wrote (`cvae.predict --from lab4-template`).

    python -m cvae.export CHECKPOINT --to lab4-template --out FILE.ckpt [--force]

The template's Trainer saves {"state_dict", "optimizer", "lr", "tfr",
"last_epoch"}, and its Tester loads `checkpoint["state_dict"]` into a VAE_Model
whose submodules have the same names as cvae.families.lab4_2024.model.CVAE's
(frame_transformation, label_transformation, Gaussian_Predictor,
Decoder_Fusion, Generator). One name differs: the template's ResidualBlock
calls its 1x1 shortcut `skip`, cvae.families.lab4_2024.model calls it `adaptor` (DepthConv's is
`adaptor` in both). A model whose options make it another function than the
template's modules (output_activation sigmoid, leaky_slope other than 1.0)
would load without an error and predict something else, so it is refused
(exit 2, naming the options) unless --force.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from cvae.core.checkpoint import CheckpointError
from cvae.core.schedules import teacher_forcing_ratio
from cvae.families.lab4_2024.config import ConfigError, TrainConfig
from cvae.families.lab4_2024.model import CVAE, TEMPLATE_LEAKY_SLOPE, ResidualBlock

FORMATS = ("lab4-template",)
TEMPLATE_KEYS = ("state_dict", "optimizer", "lr", "tfr", "last_epoch")


class ExportError(ValueError):
    """The checkpoint cannot be written in the asked format (a user can fix it)."""


def residual_shortcuts(model: CVAE) -> list[str]:
    """Prefixes (e.g. 'Generator.1') of every ResidualBlock that has a 1x1 shortcut."""
    return [name for name, m in model.named_modules() if isinstance(m, ResidualBlock) and m.adaptor is not None]


def _rename_shortcuts(state_dict: dict[str, torch.Tensor], model: CVAE, old: str,
                      new: str) -> dict[str, torch.Tensor]:
    """Rename the 1x1 shortcut of every ResidualBlock from `old` to `new` in the tensor names."""
    renames = {f"{p}.{old}.": f"{p}.{new}." for p in residual_shortcuts(model)}
    out = {}
    for key, tensor in state_dict.items():
        prefix = next((p for p in renames if key.startswith(p)), None)
        out[key if prefix is None else renames[prefix] + key[len(prefix):]] = tensor
    return out


def to_template_names(state_dict: dict[str, torch.Tensor], model: CVAE) -> dict[str, torch.Tensor]:
    """cvae.families.lab4_2024.model's tensor names -> the template's: ResidualBlock.adaptor -> ResidualBlock.skip."""
    return _rename_shortcuts(state_dict, model, "adaptor", "skip")


def from_template_names(state_dict: dict[str, torch.Tensor], model: CVAE) -> dict[str, torch.Tensor]:
    """The template's tensor names -> cvae.families.lab4_2024.model's (the inverse of to_template_names)."""
    return _rename_shortcuts(state_dict, model, "skip", "adaptor")


def read_template_checkpoint(path: str | Path, frame_H: int, frame_W: int) -> tuple[CVAE, TrainConfig, dict]:
    """A checkpoint the template's Trainer saved -> (model in eval mode, its TrainConfig, the file's dict).

    The dims come from the tensors' shapes; the function is the template's
    (output_activation none, leaky_slope 1.0); the frame size is not in the file."""
    path = Path(path)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(err).splitlines()[0]})") from None
    sd = saved.get("state_dict") if isinstance(saved, dict) else None
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: not a template checkpoint (expected a dict with a 'state_dict', "
                              "as the template's Trainer.save writes)")
    try:
        dims = {"F_dim": sd["frame_transformation.6.weight"].shape[0],
                "L_dim": sd["label_transformation.1.weight"].shape[0] * 2,
                "N_dim": sd["Gaussian_Predictor.6.weight"].shape[0] // 2,
                "D_out_dim": sd["Decoder_Fusion.5.weight"].shape[0]}
    except KeyError as err:
        raise CheckpointError(f"{path}: not the template's VAE_Model: no tensor {err.args[0]}") from None
    cfg = TrainConfig(**dims, frame_H=frame_H, frame_W=frame_W, output_activation="none",
                      leaky_slope=TEMPLATE_LEAKY_SLOPE)
    model = CVAE.from_config(cfg)
    try:
        model.load_state_dict(from_template_names(sd, model), strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the tensors do not fit the template's model at dims {dims}: "
                              f"{str(err).splitlines()[0]}") from None
    return model.eval(), cfg, saved


def template_differences(cfg: TrainConfig) -> list[str]:
    """The options that make `cfg`'s model another function than the template's modules."""
    out = []
    if cfg.output_activation != "none":
        out.append(f"output_activation is {cfg.output_activation!r} (the template's Generator has no activation)")
    if cfg.leaky_slope != TEMPLATE_LEAKY_SLOPE:
        out.append(f"leaky_slope is {cfg.leaky_slope!r} (the template's LeakyReLU(True) is slope 1.0)")
    return out


def export_lab4_template(checkpoint: str | Path, out: str | Path, force: bool = False) -> dict[str, Any]:
    """Write `out` in the template's format; returns what was written (without tensors)."""
    from cvae.families.lab4_2024.saved import load_lab4_checkpoint

    state = load_lab4_checkpoint(checkpoint)
    try:
        cfg = TrainConfig.from_dict(state["config"], source=f"{checkpoint}: config")
    except ConfigError as err:
        raise ExportError(f"{checkpoint}: not a lab4-2024 checkpoint ({err})") from None
    differences = template_differences(cfg)
    if differences and not force:
        raise ExportError(f"{checkpoint}: the model is not the template's function: {'; '.join(differences)}. "
                          "The template's Tester would load it without an error and predict something else; "
                          "pass --force to export it anyway")
    model = CVAE.from_config(cfg)
    epoch = int(state["epoch"])
    last_lr = state["scheduler"].get("_last_lr") or [cfg.lr]
    tfr = teacher_forcing_ratio(epoch, tfr=cfg.tfr, sde=cfg.tfr_sde, d_step=cfg.tfr_d_step,
                                decay=cfg.tfr_decay, lower_bound=cfg.tfr_lower_bound)
    written = {"state_dict": to_template_names(state["model"], model), "optimizer": state["optimizer"],
               "lr": float(last_lr[0]), "tfr": float(tfr), "last_epoch": epoch}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(written, out)
    return {k: v for k, v in written.items() if k not in ("state_dict", "optimizer")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cvae.export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a checkpoint cvae.train wrote (best.pt, last.pt)")
    parser.add_argument("--to", choices=FORMATS, required=True, help="the format to write")
    parser.add_argument("--out", required=True, help="the file to write, e.g. model.ckpt")
    parser.add_argument("--force", action="store_true", help="export a model that is not the template's function")
    args = parser.parse_args(argv)
    try:
        info = export_lab4_template(args.checkpoint, args.out, force=args.force)
    except (CheckpointError, ExportError) as err:
        print(f"python -m cvae.export: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} (the template's format: epoch {info['last_epoch']}, lr {info['lr']:g}, "
          f"tfr {info['tfr']:g}); load it with the template's Tester (--ckpt_path {args.out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
