"""Bad input and security (issue 6, items 1 and 6): exit code 2, a message naming the
file/key/value, and nothing started. The CLIs are called in-process (main(argv))
so no Ray and no subprocess start-up; `ray.is_initialized()` proves Ray never started.

Covered elsewhere (not repeated here): every invalid space YAML case
(tests/search/test_space.py, and through the CLI in test_cli.py), --data that is a
file and --resume of a missing folder (test_cli.py), each data-folder defect at
the loader (tests/cvae/test_data.py), TrainConfig ranges (tests/cvae/test_config.py),
a truncated / mismatched checkpoint in Trainer.load_checkpoint (tests/cvae/test_train.py)
and a non-checkpoint in cvae.predict (tests/cvae/test_predict.py).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cvae.families.lab4_2024.config import TrainConfig
from cvae.families.lab4_2024.data import LabData
from cvae.families.lab4_2024.synthetic import Preset, generate
from cvae.families.lab4_2024.train import Trainer

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import run_search  # noqa: E402

torch.set_num_threads(1)
TINY = Preset(train_video_lengths=(8,), val_length=8, test_sequences=1, test_length=4)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("in") / "syn", TINY, seed=0, progress=False)


@pytest.fixture
def data_copy(tiny_root, tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    return root


def _ray_started() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def _search_fails(capsys, make_space, tmp_path: Path, data_root: Path, *extra: str, **space_kw) -> str:
    space = make_space(tmp_path / "s.yaml", name="bad", data_root=data_root, **space_kw)
    rc = run_search.main(["--space", str(space), "--storage-path", str(tmp_path / "runs"), "--no-report", *extra])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and err.startswith("run_search.py: error: "), err
    assert not _ray_started()
    assert not list((tmp_path / "runs").glob("**/result.json"))  # no trial ran
    return err


# --- the data folder, through run_search.py ---------------------------------------
def test_missing_data_folder(capsys, make_space, tmp_path):
    err = _search_fails(capsys, make_space, tmp_path, tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in err and "does not exist" in err


def test_empty_data_folder(capsys, make_space, tmp_path):
    (tmp_path / "empty").mkdir()
    err = _search_fails(capsys, make_space, tmp_path, tmp_path / "empty")
    assert str(tmp_path / "empty") in err and "folder missing" in err


def test_image_without_label(capsys, make_space, tmp_path, data_copy):
    label = next((data_copy / "train" / "train_label").glob("*.png"))
    label.unlink()
    err = _search_fails(capsys, make_space, tmp_path, data_copy)
    assert label.name in err and "has no label" in err


def test_truncated_png(capsys, make_space, tmp_path, data_copy):
    png = sorted((data_copy / "val" / "val_img").glob("*.png"))[3]
    png.write_bytes(png.read_bytes()[:40])
    err = _search_fails(capsys, make_space, tmp_path, data_copy)
    assert str(png) in err and "cannot decode" in err


def test_images_of_mixed_sizes(capsys, make_space, tmp_path, data_copy):
    from PIL import Image

    png = sorted((data_copy / "train" / "train_img").glob("*.png"))[2]
    with Image.open(png) as im:
        im.resize((im.width // 2, im.height // 2)).save(png)
    err = _search_fails(capsys, make_space, tmp_path, data_copy)
    assert "mixed sizes" in err and png.name in err


def test_val_vi_len_longer_than_the_video(capsys, make_space, tmp_path, tiny_root):
    err = _search_fails(capsys, make_space, tmp_path, tiny_root, fixed={"val_vi_len": 9})
    assert "val_vi_len is 9" in err and "only 8 frames" in err and "s.yaml" in err


def test_resume_of_a_folder_that_is_not_an_experiment(capsys, make_space, tmp_path, tiny_root):
    (tmp_path / "runs" / "bad").mkdir(parents=True)
    (tmp_path / "runs" / "bad" / "notes.txt").write_text("hello")
    err = _search_fails(capsys, make_space, tmp_path, tiny_root, "--resume")
    assert str(tmp_path / "runs" / "bad") in err and "not a search folder" in err


@pytest.mark.parametrize("key,value,fragment", [
    ("batch_size", 0, "batch_size is 0"), ("lr", 0, "lr is 0"), ("train_vi_len", 1, "train_vi_len is 1"),
    ("tfr", 1.5, "tfr is 1.5"), ("kl_anneal_ratio", 0, "kl_anneal_ratio is 0"), ("frame_W", 3, "frame_W is 3"),
])
def test_train_config_out_of_range_through_the_search(capsys, make_space, tmp_path, tiny_root, key, value, fragment):
    err = _search_fails(capsys, make_space, tmp_path, tiny_root, fixed={key: value})
    assert fragment in err and "s.yaml" in err


# --- YAML is read with a safe loader ----------------------------------------------
def test_yaml_python_tags_are_refused_and_nothing_runs(capfd, make_space, tmp_path, tiny_root):
    marker = tmp_path / "hacked"
    space = make_space(tmp_path / "evil.yaml", name="evil", data_root=tiny_root,
                       extra=f'  seed_hack: !!python/object/apply:os.system ["touch {marker}"]\n')
    rc = run_search.main(["--space", str(space), "--storage-path", str(tmp_path / "runs"), "--dry-run"])
    err = capfd.readouterr().err
    assert rc == 2, err
    assert str(space) in err and "Traceback" not in err
    assert not marker.exists()  # os.system never ran
    # and the trainer's own config loader (cvae.train --config, best.yaml) is safe too
    cfg_file = tmp_path / "evil-train.yaml"
    cfg_file.write_text(f'lr: !!python/object/apply:os.system ["touch {marker}"]\n')
    from cvae.train import main as train_main

    assert train_main(["--config", str(cfg_file), "--data", str(tiny_root)]) == 2
    assert str(cfg_file) in capfd.readouterr().err
    assert not marker.exists()


# --- checkpoints: weights_only, truncated, other model size -------------------------
class Payload:
    """Unpickling this would run code; weights_only=True must refuse it."""

    def __reduce__(self):
        return (Path.touch, (Path(PAYLOAD_MARKER[0]),))


PAYLOAD_MARKER: list[str] = [""]


def _tiny_cfg(**kw) -> TrainConfig:
    base = dict(F_dim=16, L_dim=8, N_dim=4, D_out_dim=16, frame_H=16, frame_W=32, train_vi_len=4,
                val_vi_len=4, num_epoch=2, precision="fp32", channels_last=False, device="cpu")
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_root) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("ck")
    g = torch.Generator().manual_seed(0)
    data = LabData(*(torch.randint(0, 256, (8, 3, 16, 32), dtype=torch.uint8, generator=g) for _ in range(4)))
    trainer = Trainer(_tiny_cfg(), data)
    trainer.run_epoch()
    good = tmp / "good.pt"
    trainer.save_checkpoint(good)
    out = {"good": good}
    state = torch.load(good, weights_only=True)
    # 1) a pickled arbitrary object inside an otherwise valid checkpoint
    PAYLOAD_MARKER[0] = str(tmp / "payload-ran")
    torch.save({**state, "extra": Payload()}, tmp / "evil.pt")
    out["evil"] = tmp / "evil.pt"
    # 2) truncated
    (tmp / "truncated.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    out["truncated"] = tmp / "truncated.pt"
    # 3) weights of a bigger model under this config
    big = Trainer(_tiny_cfg(D_out_dim=24), data)
    big_state = big.state_dict() if hasattr(big, "state_dict") else None
    big.save_checkpoint(tmp / "big.pt")
    out["big"] = tmp / "big.pt"
    # 4) the config says 16 but the weights are of a 24-wide decoder (predict builds the model from the config)
    lying = torch.load(tmp / "big.pt", weights_only=True)
    lying["config"] = {**lying["config"], "D_out_dim": 16}
    torch.save(lying, tmp / "lying.pt")
    out["lying"] = tmp / "lying.pt"
    cfg_yaml = tmp / "cfg.yaml"
    cfg_yaml.write_text(yaml.safe_dump(_tiny_cfg().to_dict()))
    out["cfg"] = cfg_yaml
    del big_state
    return out


def test_train_resume_refuses_a_checkpoint_with_a_pickled_object(capsys, checkpoints, tiny_root, tmp_path):
    from cvae.train import main as train_main

    rc = train_main(["--config", str(checkpoints["cfg"]), "--data", str(tiny_root),
                     "--resume", str(checkpoints["evil"]), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "evil.pt" in err and "not a readable checkpoint" in err, err
    assert not Path(PAYLOAD_MARKER[0]).exists()  # the object was never unpickled
    assert not (tmp_path / "o").exists()


def test_predict_refuses_a_checkpoint_with_a_pickled_object(capsys, checkpoints, tiny_root, tmp_path):
    from cvae.predict import main as predict_main

    rc = predict_main(["--checkpoint", str(checkpoints["evil"]), "--data", str(tiny_root),
                       "--out", str(tmp_path / "o"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "evil.pt" in err, err
    assert not Path(PAYLOAD_MARKER[0]).exists()


@pytest.mark.parametrize("which,fragment", [("truncated", "not a readable checkpoint"),
                                            ("big", "D_out_dim 24 in the checkpoint but 16 configured")])
def test_train_resume_refuses_bad_checkpoints(capsys, checkpoints, tiny_root, tmp_path, which, fragment):
    from cvae.train import main as train_main

    rc = train_main(["--config", str(checkpoints["cfg"]), "--data", str(tiny_root),
                     "--resume", str(checkpoints[which]), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and f"{which}.pt" in err and fragment in err and "Traceback" not in err, err


@pytest.mark.parametrize("which,fragment", [("truncated", "not a readable checkpoint"),
                                            ("lying", "does not match the configured model")])
def test_predict_refuses_bad_checkpoints(capsys, checkpoints, tiny_root, tmp_path, which, fragment):
    from cvae.predict import main as predict_main

    rc = predict_main(["--checkpoint", str(checkpoints[which]), "--data", str(tiny_root),
                       "--out", str(tmp_path / "o"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{which}.pt" in err and fragment in err and "Traceback" not in err, err


# --- the dashboard ---------------------------------------------------------------
def test_dashboard_binds_localhost_by_default():
    import inspect

    from search.runner import connect

    assert run_search.parse_args(["--space", "x.yaml"]).dashboard_host == "127.0.0.1"
    assert inspect.signature(connect).parameters["dashboard_host"].default == "127.0.0.1"
