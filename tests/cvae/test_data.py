"""cvae.data: sorting, resizing, chunking, the decode cache and every data error."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvae.families.lab4_2024 import data
from cvae.families.lab4_2024.data import DataError, load_lab_data, load_split, load_test_sequences, train_sequences
from cvae.families.lab4_2024.synthetic import Preset, generate

TINY = Preset(train_video_lengths=(9, 8), val_length=6, test_sequences=2, test_length=5)


# --- fixtures: hand-made datasets whose pixels encode the frame number -----------
def _solid(value: int, size: tuple[int, int] = (16, 8), mode: str = "RGB") -> Image.Image:
    """A (W, H) image whose red channel is `value`: decoding order becomes visible."""
    if mode == "L":
        return Image.new("L", size, value)
    return Image.new(mode, size, (value, 255 - value, 7) + ((255,) if mode == "RGBA" else ()))


def _write_split(root: Path, split: str, n: int, size: tuple[int, int] = (16, 8)) -> None:
    img_dir, label_dir = root / split / f"{split}_img", root / split / f"{split}_label"
    img_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    for i in range(n):
        _solid(10 * i, size).save(img_dir / f"frame{i}.png")
        _solid(200 - 10 * i, size).save(label_dir / f"frame{i}.png")


@pytest.fixture
def handmade(tmp_path: Path) -> Path:
    root = tmp_path / "hand"
    _write_split(root, "train", 12)
    _write_split(root, "val", 3)
    return root


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("syn") / "tiny", TINY, seed=0, progress=False)


# --- sorting, resizing, conversion ---------------------------------------------------
def test_frames_sort_by_number_not_by_name(handmade: Path) -> None:
    frames, labels = load_split(handmade, "train", 8, 16, cache=False)
    # frame2 before frame10: a string sort would put frame10, frame11 after frame1.
    assert frames[:, 0, 0, 0].tolist() == [10 * i for i in range(12)]
    assert labels[:, 0, 0, 0].tolist() == [200 - 10 * i for i in range(12)]


def test_sorted_frame_names() -> None:
    names = ["frame10.png", "frame2.png", "frame1.png", "frame0.png"]
    assert data.sorted_frame_names(Path("x"), names) == ["frame0.png", "frame1.png", "frame2.png", "frame10.png"]


def test_resize_gives_uint8_of_the_frame_size(handmade: Path) -> None:
    frames, labels = load_split(handmade, "val", 4, 6, cache=False)
    assert frames.shape == labels.shape == (3, 3, 4, 6)
    assert frames.dtype == labels.dtype == torch.uint8
    # A solid colour stays exactly that colour through the resize.
    assert frames[1, :, 2, 3].tolist() == [10, 245, 7]


def test_resize_is_antialiased(tmp_path: Path) -> None:
    """A 1-pixel checkerboard shrunk 4x averages to grey; point sampling would give 0 or 255."""
    root = tmp_path / "checker"
    _write_split(root, "val", 1, size=(64, 32))
    board = ((np.indices((32, 64)).sum(axis=0) % 2) * 255).astype(np.uint8)
    Image.fromarray(np.stack([board] * 3, axis=2)).save(root / "val" / "val_img" / "frame0.png")
    frames, _ = load_split(root, "val", 8, 16, cache=False)
    assert frames.float().sub(127.5).abs().max() < 20


def test_rgba_and_grayscale_become_rgb(tmp_path: Path) -> None:
    root = tmp_path / "modes"
    _write_split(root, "val", 2)
    transparent = Image.new("RGBA", (16, 8), (0, 0, 0, 0))  # OpenPose-style label with alpha
    transparent.save(root / "val" / "val_label" / "frame0.png")
    _solid(90, mode="L").save(root / "val" / "val_img" / "frame1.png")
    frames, labels = load_split(root, "val", 8, 16, cache=False)
    assert frames.shape == labels.shape == (2, 3, 8, 16)
    assert (labels[0] == 255).all()          # transparent -> white background
    assert (frames[1] == 90).all()           # grey -> three equal channels


# --- chunking ------------------------------------------------------------------------------
def _numbered(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    frames = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 2, 2).contiguous()
    return frames, 255 - frames


def test_train_sequences_are_consecutive_chunks_without_the_tail() -> None:
    frames, labels = _numbered(23)
    seq_f, seq_l = train_sequences(frames, labels, vi_len=5, partial=1.0)
    assert seq_f.shape == seq_l.shape == (4, 5, 3, 2, 2)  # 23 // 5 = 4, frames 20..22 dropped
    assert seq_f[:, :, 0, 0, 0].tolist() == [[5 * s + t for t in range(5)] for s in range(4)]
    assert torch.equal(seq_l, 255 - seq_f)
    assert seq_f.data_ptr() == frames.data_ptr()  # a view, not a copy of the split


@pytest.mark.parametrize(("partial", "expected"), [(1.0, 4), (0.5, 2), (0.4, 1), (0.01, 1)])
def test_partial_keeps_the_first_sequences(partial: float, expected: int) -> None:
    frames, labels = _numbered(20)
    seq_f, _ = train_sequences(frames, labels, vi_len=5, partial=partial)
    assert seq_f.shape[0] == expected
    assert seq_f[0, 0, 0, 0, 0].item() == 0  # always the first ones


def test_train_sequences_rejects_bad_arguments() -> None:
    frames, labels = _numbered(6)
    with pytest.raises(DataError, match="6 frames, fewer than train_vi_len=7"):
        train_sequences(frames, labels, vi_len=7, partial=1.0)
    with pytest.raises(DataError, match="partial is 0"):
        train_sequences(frames, labels, vi_len=2, partial=0)
    with pytest.raises(DataError, match="train_vi_len is 0"):
        train_sequences(frames, labels, vi_len=0, partial=1.0)
    with pytest.raises(DataError, match="must both be"):
        train_sequences(frames, labels[:5], vi_len=2, partial=1.0)


# --- round trip with the synthetic generator -------------------------------------------------
def test_synthetic_round_trip(tiny_synthetic: Path) -> None:
    lab = load_lab_data(tiny_synthetic, 16, 32, progress=False, cache=False)
    assert lab.train_frames.shape == lab.train_labels.shape == (17, 3, 16, 32)
    assert lab.val_frames.shape == (6, 3, 16, 32) and lab.train_frames.shape[2:] == (16, 32)
    # Frame 12 decoded by the loader equals PIL's own bilinear resize of frame12.png.
    with Image.open(tiny_synthetic / "train" / "train_img" / "frame12.png") as img:
        expected = torch.from_numpy(np.array(img.convert("RGB").resize((32, 16), Image.BILINEAR))).permute(2, 0, 1)
    assert torch.equal(lab.train_frames[12], expected)
    # Labels are mostly white, frames are not.
    assert lab.train_labels.float().mean() > 200 > lab.train_frames.float().mean()


def test_synthetic_test_sequences(tiny_synthetic: Path) -> None:
    sequences = load_test_sequences(tiny_synthetic, 16, 32)
    assert len(sequences) == 2
    for first, labels in sequences:
        assert first.shape == (3, 16, 32) and first.dtype == torch.uint8
        assert labels.shape == (5, 3, 16, 32)
    assert not torch.equal(sequences[0][0], sequences[1][0])  # two different dancers


def test_test_sequences_sort_numerically(tmp_path: Path) -> None:
    root = tmp_path / "t"
    for seq, value in (("10", 100), ("2", 20)):
        (root / "test" / "test_img" / seq).mkdir(parents=True)
        (root / "test" / "test_label" / seq).mkdir(parents=True)
        _solid(value).save(root / "test" / "test_img" / seq / "frame0.png")
        for i in range(3):
            _solid(value + i).save(root / "test" / "test_label" / seq / f"frame{i}.png")
    sequences = load_test_sequences(root, 8, 16)
    assert [first[0, 0, 0].item() for first, _ in sequences] == [20, 100]
    assert sequences[1][1][:, 0, 0, 0].tolist() == [100, 101, 102]


# --- errors: each names the path and what is expected ------------------------------------------
def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"{tmp_path / 'nope'}: data folder does not exist"):
        load_split(tmp_path / "nope", "train", 8, 16)


def test_root_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "data.zip"
    path.write_bytes(b"PK")
    with pytest.raises(DataError, match=f"{path}: is a file"):
        load_lab_data(path, 8, 16, progress=False)


def test_missing_split_folder(handmade: Path) -> None:
    (handmade / "val" / "val_label").rename(handmade / "val" / "labels")
    with pytest.raises(DataError, match=f"{handmade / 'val' / 'val_label'}: folder missing"):
        load_split(handmade, "val", 8, 16)
    with pytest.raises(DataError, match=f"{handmade / 'test' / 'test_img'}: folder missing"):
        load_test_sequences(handmade, 8, 16)


def test_empty_split(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    _write_split(root, "val", 0)
    with pytest.raises(DataError, match=f"{root / 'val' / 'val_img'}: no .png frames"):
        load_split(root, "val", 8, 16)


def test_unknown_split_name(handmade: Path) -> None:
    with pytest.raises(DataError, match="split is 'valid'"):
        load_split(handmade, "valid", 8, 16)


def test_image_without_label(handmade: Path) -> None:
    (handmade / "train" / "train_label" / "frame7.png").unlink()
    with pytest.raises(DataError, match=f"{handmade / 'train' / 'train_img' / 'frame7.png'}: image has no label"):
        load_split(handmade, "train", 8, 16)


def test_a_label_without_an_image_is_ignored_with_one_warning(handmade: Path, capsys) -> None:
    before = load_split(handmade, "train", 8, 16, cache=False)
    (handmade / "train" / "train_img" / "frame3.png").unlink()
    after = load_split(handmade, "train", 8, 16, cache=False)
    assert after[0].shape[0] == before[0].shape[0] - 1 and after[1].shape == after[0].shape
    err = capsys.readouterr().err
    assert err.count("warning:") == 1
    assert f"{handmade / 'train' / 'train_label'}: 1 label(s) without an image ignored (first: frame3.png)" in err


def test_truncated_png(handmade: Path) -> None:
    path = handmade / "val" / "val_img" / "frame1.png"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match=f"{path}: cannot decode as an image"):
        load_split(handmade, "val", 8, 16, cache=False)


def test_not_a_png(handmade: Path) -> None:
    path = handmade / "val" / "val_label" / "frame2.png"
    path.write_text("not an image")
    with pytest.raises(DataError, match=f"{path}: cannot decode as an image"):
        load_split(handmade, "val", 8, 16, cache=False)


def test_mixed_sizes(handmade: Path) -> None:
    _solid(5, size=(20, 8)).save(handmade / "train" / "train_img" / "frame4.png")
    with pytest.raises(DataError, match=f"{handmade / 'train' / 'train_img'}: images of mixed sizes.*frame4.png is 20x8"):
        load_split(handmade, "train", 8, 16, cache=False)


def test_file_without_a_number(handmade: Path) -> None:
    _solid(5).save(handmade / "val" / "val_img" / "cover.png")
    _solid(5).save(handmade / "val" / "val_label" / "cover.png")
    with pytest.raises(DataError, match="cover.png: name has no number"):
        load_split(handmade, "val", 8, 16)


def test_test_sequence_without_first_frame(tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "test" / "test_img" / "0").mkdir(parents=True)
    (root / "test" / "test_label" / "0").mkdir(parents=True)
    _solid(1).save(root / "test" / "test_label" / "0" / "frame0.png")
    with pytest.raises(DataError, match=f"{root / 'test' / 'test_img' / '0' / 'frame0.png'}: first frame missing"):
        load_test_sequences(root, 8, 16)
    (root / "test" / "test_label" / "1").mkdir()
    with pytest.raises(DataError, match=f"{root / 'test' / 'test_label' / '1'}: test labels have no first frame"):
        load_test_sequences(root, 8, 16)


def test_bad_frame_size(handmade: Path) -> None:
    with pytest.raises(DataError, match="frame_W is 0"):
        load_split(handmade, "val", 8, 0)


# --- the decode cache -------------------------------------------------------------------------
def test_cache_is_written_and_used(handmade: Path) -> None:
    first = load_split(handmade, "train", 8, 16)
    cache = data.cache_path(handmade, "train", 8, 16)
    assert cache.is_file()
    # Plant a marker in the cached tensors: the next load must return it, proving
    # that it read the cache instead of decoding the PNGs again.
    saved = torch.load(cache, weights_only=True)
    saved["frames"][0, 0, 0, 0] = 99
    torch.save(saved, cache)
    frames, labels = load_split(handmade, "train", 8, 16)
    assert frames[0, 0, 0, 0].item() == 99
    assert torch.equal(labels, first[1])
    # Another frame size has its own cache entry.
    load_split(handmade, "train", 4, 8)
    assert data.cache_path(handmade, "train", 4, 8).is_file()


def test_touching_a_file_invalidates_the_cache(handmade: Path) -> None:
    load_split(handmade, "train", 8, 16)
    cache = data.cache_path(handmade, "train", 8, 16)
    saved = torch.load(cache, weights_only=True)
    saved["frames"][0, 0, 0, 0] = 99
    torch.save(saved, cache)
    path = handmade / "train" / "train_img" / "frame5.png"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    frames, _ = load_split(handmade, "train", 8, 16)
    assert frames[0, 0, 0, 0].item() == 0  # decoded again, marker gone


def test_changed_content_invalidates_the_cache(handmade: Path) -> None:
    load_split(handmade, "val", 8, 16)
    _solid(123).save(handmade / "val" / "val_img" / "frame2.png")
    frames, _ = load_split(handmade, "val", 8, 16)
    assert frames[2, 0, 0, 0].item() == 123


def test_removed_file_invalidates_the_cache(handmade: Path) -> None:
    load_split(handmade, "train", 8, 16)
    (handmade / "train" / "train_img" / "frame11.png").unlink()
    (handmade / "train" / "train_label" / "frame11.png").unlink()
    frames, _ = load_split(handmade, "train", 8, 16)
    assert frames.shape[0] == 11


def test_corrupt_cache_is_a_miss(handmade: Path) -> None:
    expected = load_split(handmade, "val", 8, 16, cache=False)
    cache = data.cache_path(handmade, "val", 8, 16)
    cache.parent.mkdir()
    cache.write_bytes(b"garbage")
    frames, labels = load_split(handmade, "val", 8, 16)
    assert torch.equal(frames, expected[0]) and torch.equal(labels, expected[1])
    assert torch.load(cache, weights_only=True)["frames"].shape == (3, 3, 8, 16)  # rewritten


def test_unwritable_cache_location_is_skipped(handmade: Path) -> None:
    # A file where the cache folder should be makes every write fail, as a
    # read-only data folder does (tests may run as root, where chmod does not stop writes).
    (handmade / ".cache").write_text("not a folder")
    frames, _ = load_split(handmade, "val", 8, 16)
    assert frames.shape == (3, 3, 8, 16)
    assert (handmade / ".cache").read_text() == "not a folder"


def test_progress_shown_for_large_splits(handmade: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(data, "PROGRESS_MIN_FRAMES", 5)
    load_lab_data(handmade, 8, 16, progress=True, cache=False)
    err = capsys.readouterr().err
    assert "decoding train (12 frames): 24/24 images (100%)" in err
    assert "decoding val" not in err  # 3 frames: below the threshold
