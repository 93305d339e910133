"""cvae.synthetic: layout, determinism, and that the label carries the figure's motion."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cvae.families.lab4_2024 import synthetic
from cvae.families.lab4_2024.synthetic import IMAGE_H, IMAGE_W, Preset, SyntheticError, generate

TINY = Preset(train_video_lengths=(7, 5), val_length=6, test_sequences=2, test_length=4)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_small_preset_cli_writes_the_lab4_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "small"
    assert synthetic.main(["--out", str(out), "--preset", "small", "--seed", "3", "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out
    train_img, train_label = out / "train" / "train_img", out / "train" / "train_label"
    expected = {f"frame{i}.png" for i in range(384)}
    assert _names(train_img) == expected and _names(train_label) == expected
    assert _names(out / "val" / "val_img") == _names(out / "val" / "val_label") == {f"frame{i}.png" for i in range(64)}
    for seq in ("0", "1"):
        assert _names(out / "test" / "test_img" / seq) == {"frame0.png"}
        assert _names(out / "test" / "test_label" / seq) == {f"frame{i}.png" for i in range(64)}
    assert sorted(p.name for p in (out / "test" / "test_img").iterdir()) == ["0", "1"]
    with Image.open(train_img / "frame100.png") as img:
        assert img.mode == "RGB" and img.size == (IMAGE_W, IMAGE_H)
    assert not list(tmp_path.glob(".small.partial-*"))  # the temporary folder was renamed away


def test_lab_preset_has_the_real_counts() -> None:
    lab = synthetic.PRESETS["lab"]
    assert lab.train_frames == 23410
    assert (lab.val_length, lab.test_sequences, lab.test_length) == (630, 5, 630)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = _files(generate(tmp_path / "a", TINY, seed=5, progress=False))
    b = _files(generate(tmp_path / "b", TINY, seed=5, progress=False))
    c = _files(generate(tmp_path / "c", TINY, seed=6, progress=False))
    assert len(a) == 2 * (12 + 6) + 2 * (1 + 4)
    assert a == b
    assert a.keys() == c.keys()
    assert sum(a[k] != c[k] for k in a) == len(a)  # every frame and label differs


def test_parallel_generation_writes_the_same_bytes(tmp_path: Path) -> None:
    serial = _files(generate(tmp_path / "serial", TINY, seed=1, progress=False, workers=1))
    parallel = _files(generate(tmp_path / "parallel", TINY, seed=1, progress=False, workers=2))
    assert serial == parallel


def test_train_videos_are_concatenated_in_order(tmp_path: Path) -> None:
    """frame6 ends the first dancer's video and frame7 starts the second: a cut."""
    root = generate(tmp_path / "d", TINY, seed=0, progress=False)
    frames = [np.asarray(Image.open(root / "train" / "train_img" / f"frame{i}.png"), dtype=np.float32) for i in range(12)]
    step = [np.abs(frames[i + 1] - frames[i]).mean() for i in range(11)]
    cut = step[6]  # frame6 -> frame7
    assert cut > 3 * max(step[:6] + step[7:])


def _figure_and_skeleton(dancer: synthetic.Dancer, t: float) -> tuple[np.ndarray, np.ndarray]:
    k = synthetic.pose_at(dancer, t)
    background = synthetic.draw_background(dancer)
    frame = synthetic.draw_dancer(background, dancer, k).astype(np.int16)
    figure = np.abs(frame - np.rint(background)).sum(axis=2) > 30        # (H, W) pixels of the dancer
    skeleton = (synthetic.draw_skeleton(k) < 250).any(axis=2)              # (H, W) non-white label pixels
    return figure, skeleton


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def test_figure_pixels_move_with_the_skeleton() -> None:
    dancer = synthetic.random_dancer(np.random.default_rng(11))
    figure_c, skeleton_c = [], []
    for t in range(0, 120, 6):
        figure, skeleton = _figure_and_skeleton(dancer, float(t))
        # The skeleton lies on the figure: most of its pixels are covered by the dancer.
        assert (figure & skeleton).sum() >= 0.8 * skeleton.sum()
        figure_c.append(_centroid(figure))
        skeleton_c.append(_centroid(skeleton))
    figure_c, skeleton_c = np.array(figure_c), np.array(skeleton_c)
    assert figure_c[:, 0].std() > 2.0  # the dancer really moves (not a trivially static check)
    assert np.abs(figure_c - skeleton_c).max() < 4.0
    assert np.corrcoef(figure_c[:, 0], skeleton_c[:, 0])[0, 1] > 0.95


def test_pose_fixes_the_pixels_for_a_given_look() -> None:
    """Same keypoints and look -> same frame, whatever the time: the task is learnable."""
    dancer = synthetic.random_dancer(np.random.default_rng(2))
    k = synthetic.pose_at(dancer, 17.0)
    background = synthetic.draw_background(dancer)
    first = synthetic.draw_dancer(background, dancer, k)
    again = synthetic.draw_dancer(background, dancer, k.copy())
    moved = synthetic.draw_dancer(background, dancer, k + np.array([3.0, 0.0], dtype=np.float32))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, moved)


def test_label_is_an_openpose_skeleton_on_white() -> None:
    dancer = synthetic.random_dancer(np.random.default_rng(4))
    label = synthetic.draw_skeleton(synthetic.pose_at(dancer, 0.0)).astype(int)  # (H, W, 3)
    assert label.shape == (IMAGE_H, IMAGE_W, 3)
    assert (label[0] == 255).all() and (label[:, 0] == 255).all()  # white border
    # Saturated palette colours of several limbs are present (not grey lines).
    saturation = label.max(axis=2) - label.min(axis=2)
    assert (saturation > 150).sum() > 50
    hues = {tuple(c) for c in (label[saturation > 200] // 64).tolist()}
    assert len(hues) >= 5


def test_frames_show_a_studio_not_white() -> None:
    dancer = synthetic.random_dancer(np.random.default_rng(8))
    frame = synthetic.draw_dancer(synthetic.draw_background(dancer), dancer, synthetic.pose_at(dancer, 0.0))
    assert frame.dtype == np.uint8 and frame.shape == (IMAGE_H, IMAGE_W, 3)
    top, bottom = frame[1].astype(int), frame[-2].astype(int)
    assert np.abs(top - bottom).mean() > 5  # wall and floor differ


def test_unknown_preset_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SyntheticError, match="preset is 'huge'"):
        generate(tmp_path / "x", "huge", progress=False)
    assert not (tmp_path / "x").exists()


def test_non_empty_output_folder_is_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "d"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SyntheticError, match=f"{out}: folder exists and is not empty"):
        generate(out, TINY, progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    generate(out, TINY, progress=False, overwrite=True)
    assert (out / "train" / "train_img" / "frame0.png").is_file() and not (out / "keep.txt").exists()


def test_empty_output_folder_is_used(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert generate(out, TINY, progress=False) == out
    assert (out / "val" / "val_label" / "frame5.png").is_file()


def test_cli_error_exits_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert synthetic.main(["--out", str(target), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{target}: exists and is not a folder" in err and "Traceback" not in err


def test_progress_line_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    generate(tmp_path / "p", TINY, progress=True)
    captured = capsys.readouterr()
    total = TINY.image_count()
    assert f"{total}/{total} images (100%)" in captured.err
    assert captured.out == ""


def test_staged_output_renames_on_success_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    from cvae.families.lab4_2024.synthetic import staged_output

    out = tmp_path / "set"
    with pytest.raises(KeyboardInterrupt):
        with staged_output(out, overwrite=False) as tmp:
            (tmp / "half.png").write_bytes(b"x")
            raise KeyboardInterrupt  # Ctrl-C half-way
    assert not out.exists() and not list(tmp_path.glob(".set.partial-*"))
    with staged_output(out, overwrite=False) as tmp:
        (tmp / "done.txt").write_text("1")
        # another process finished the same dataset first: its folder is kept
        other = out
        other.mkdir()
        (other / "theirs.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["theirs.txt"]
    assert not list(tmp_path.glob(".set.partial-*"))


def test_bair_generator_uses_its_own_error_class(tmp_path: Path) -> None:
    from cvae.families.bair_2023.synthetic import SyntheticError as BairSyntheticError
    from cvae.families.bair_2023.synthetic import generate as generate_bair

    (tmp_path / "file").write_text("")
    with pytest.raises(BairSyntheticError, match="exists and is not a folder"):
        generate_bair(tmp_path / "file", progress=False)
    with pytest.raises(BairSyntheticError, match="seed is -1"):
        generate_bair(tmp_path / "x", seed=-1, progress=False)
