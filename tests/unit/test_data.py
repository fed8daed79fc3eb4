"""Loaders: npz, a folder of .npy, a folder of images, and their errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import unreadable_files

from engine.config import DataSource
from engine.data import load_source
from engine.errors import ConfigError, DataError, InputFileError


def _image_tree(root: Path, n_per_class: int = 3) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):
            cv2.imwrite(str(root / cls / f"{i}.png"), rng.integers(0, 255, (10, 12, 3), dtype=np.uint8))


def test_images_labels_from_subfolders(tmp_path: Path) -> None:
    _image_tree(tmp_path / "imgs")
    raw = load_source(DataSource(kind="images", path=str(tmp_path / "imgs")), "data.test")
    assert len(raw) == 6
    assert raw.class_names == ("cat", "dog")
    assert raw.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert raw.images[0].shape == (10, 12, 3)


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    _image_tree(tmp_path / "imgs")
    bad = tmp_path / "imgs" / "dog" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(InputFileError) as info:
        load_source(DataSource(kind="images", path=str(tmp_path / "imgs")), "data.calibration")
    assert str(bad) in str(info.value) and "cannot be decoded" in str(info.value)


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    _image_tree(root)
    png = (root / "cat" / "0.png").read_bytes()
    # They sort after the readable images; the first one met is named, then removed.
    for path, why in unreadable_files(root / "dog", "zz.png", png):
        with pytest.raises(InputFileError) as info:
            load_source(DataSource(kind="images", path=str(root)), "data.calibration")
        assert str(info.value).startswith(f"{path}: cannot read ({why})")
        assert info.value.exit_code == 2
        path.unlink()
    assert len(load_source(DataSource(kind="images", path=str(root)), "data.test")) == 6


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="holds no images"):
        load_source(DataSource(kind="images", path=str(tmp_path / "empty")), "data.calibration")
    with pytest.raises(InputFileError, match="holds no .npy files"):
        load_source(DataSource(kind="npy_dir", path=str(tmp_path / "empty")), "data.calibration")


def test_npy_dir_in_the_guides_layout(tmp_path: Path) -> None:
    d = tmp_path / "cal"
    d.mkdir()
    for i in range(12):  # natural order: 2 before 10
        np.save(d / f"calibration_data_{i}.npy", np.full((1, 4, 4, 1), i, np.float32))
    raw = load_source(DataSource(kind="npy_dir", path=str(d)), "data.calibration")
    assert raw.arrays.shape == (12, 4, 4, 1)
    assert raw.arrays[:, 0, 0, 0].tolist() == list(range(12))


def test_npz_named_arrays_and_missing_key(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, images=np.zeros((5, 3, 3, 1), np.float32), labels=np.arange(5))
    raw = load_source(DataSource(kind="npz", path=str(p), x="images", y="labels"), "data.test")
    assert raw.arrays.shape == (5, 3, 3, 1) and raw.labels.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match=r"data.test.x: array 'x' is not in d.npz \(it holds: images, labels\)"):
        load_source(DataSource(kind="npz", path=str(p)), "data.test")
    np.savez(p, x=np.zeros((5, 2)), y=np.arange(4))
    with pytest.raises(DataError, match="4 labels for 5 inputs"):
        load_source(DataSource(kind="npz", path=str(p)), "data.test")
    p.write_text("not a zip")
    with pytest.raises(InputFileError, match="not a readable .npz"):
        load_source(DataSource(kind="npz", path=str(p)), "data.test")


def test_raw_npz_goes_through_preprocessing(tmp_path: Path) -> None:
    from engine.config import PreprocessConfig
    from engine.data import prepare
    from engine.preprocess import PreprocessSpec

    p = tmp_path / "raw.npz"
    np.savez(p, x=np.full((3, 8, 8), 255, np.uint8), y=np.arange(3))
    raw = load_source(DataSource(kind="npz", path=str(p), raw=True), "data.test")
    spec = PreprocessSpec.resolve(PreprocessConfig(), (4, 4, 1))
    ds = prepare(raw, spec, (4, 4, 1), "data.test")
    assert ds.x.shape == (3, 4, 4, 1) and float(ds.x.max()) == pytest.approx(1.0)


def test_model_ready_arrays_must_match_the_input(tmp_path: Path) -> None:
    from engine.data import prepare

    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((2, 5, 5, 1), np.float32), y=np.arange(2))
    raw = load_source(DataSource(kind="npz", path=str(p)), "data.test")
    with pytest.raises(DataError, match=r"shape \(5, 5, 1\) but the model input is \(4, 4, 1\)"):
        prepare(raw, None, (4, 4, 1), "data.test")


def test_empty_non_finite_and_scalar_arrays_are_refused_by_name(tmp_path: Path) -> None:
    from engine.data import prepare

    def load(name: str, **arrays: np.ndarray) -> object:
        p = tmp_path / name
        np.savez(p, **arrays)
        return load_source(DataSource(kind="npz", path=str(p)), "data.calibration")

    # Zero items once calibrated silently (a converter given no samples) and passed.
    raw = load("empty.npz", x=np.zeros((0, 4, 4, 1), np.float32), y=np.zeros(0))
    with pytest.raises(DataError, match=r"empty.npz: data.calibration holds no items"):
        prepare(raw, None, (4, 4, 1), "data.calibration")
    x = np.ones((6, 4, 4, 1), np.float32)
    x[2, 1, 1, 0], x[5, 0, 0, 0] = np.nan, np.inf
    raw = load("nan.npz", x=x, y=np.zeros(6))
    with pytest.raises(DataError, match=r"nan.npz: 2 of 6 data.calibration items hold NaN or infinite values \(items 2, 5\)"):
        prepare(raw, None, (4, 4, 1), "data.calibration")
    with pytest.raises(DataError, match=r"array 'x' is a single number.*data.calibration.x"):
        load("x0d.npz", x=np.float32(3.0), y=np.zeros(1))
    with pytest.raises(DataError, match=r"array 'y' is a single number.*data.calibration.y"):
        load("y0d.npz", x=np.ones((2, 4, 4, 1), np.float32), y=np.int64(1))


def test_classification_labels_are_checked_against_the_model_by_split_and_file() -> None:
    from engine.data import Dataset, check_class_labels

    x = np.zeros((4, 2), np.float32)

    def check(y: np.ndarray, n: int = 3) -> None:
        check_class_labels(Dataset(x, y, "t.npz"), "data.test", n)

    check(np.array([0, 1, 2, 2]))  # fine
    with pytest.raises(DataError, match=r"data.test \(t.npz\): labels run 1..5 but the model has 3"):
        check(np.array([1, 5, 2, 2]))
    with pytest.raises(DataError, match=r"data.test \(t.npz\): labels of shape \(4, 3\) look one-hot"):
        check(np.eye(3)[[0, 1, 2, 2]])
    with pytest.raises(DataError, match=r"labels are float32; classification needs integer"):
        check(np.array([0, 1, 2, 2], np.float32))
    with pytest.raises(DataError, match=r"labels of shape \(2,\) for 4 items"):
        check(np.array([0, 1]))


def test_class_folders_count_even_when_empty_and_must_agree(tmp_path: Path) -> None:
    from engine.data import check_same_classes

    _image_tree(tmp_path / "a")
    (tmp_path / "a" / "emu").mkdir()  # no images yet: still class 1 of cat, dog, emu
    a = load_source(DataSource(kind="images", path=str(tmp_path / "a")), "data.calibration")
    assert a.class_names == ("cat", "dog", "emu") and a.labels.tolist() == [0, 0, 0, 1, 1, 1]
    _image_tree(tmp_path / "b")
    b = load_source(DataSource(kind="images", path=str(tmp_path / "b")), "data.test")
    with pytest.raises(DataError, match=r"different class folders \(only in data.calibration: emu\)"):
        check_same_classes(a, "data.calibration", b, "data.test")


def test_a_bad_image_array_names_the_split_source_and_item(tmp_path: Path) -> None:
    from engine.config import PreprocessConfig
    from engine.data import prepare
    from engine.preprocess import PreprocessSpec

    p = tmp_path / "raw.npz"
    imgs = np.zeros((3, 8, 8, 3), np.uint8)
    np.savez(p, x=imgs[:, :, :, :2], y=np.arange(3))
    raw = load_source(DataSource(kind="npz", path=str(p), raw=True), "data.test")
    spec = PreprocessSpec.resolve(PreprocessConfig(), (8, 8, 1))
    with pytest.raises(DataError, match=r"raw.npz: data.test item 0: an image of shape \(8, 8, 2\)"):
        prepare(raw, spec, (8, 8, 1), "data.test")


def test_a_bad_labels_npy_is_an_input_error(tmp_path: Path) -> None:
    root = tmp_path / "npy"
    root.mkdir()
    for i in range(2):
        np.save(root / f"calibration_data_{i}.npy", np.zeros((1, 4, 4, 1), np.float32))
    (root / "labels.npy").write_text("not an array")
    with pytest.raises(InputFileError, match=r"labels.npy: is not a readable array of labels"):
        load_source(DataSource(kind="npy_dir", path=str(root)), "data.test")
    np.save(root / "labels.npy", np.int64(3))
    with pytest.raises(DataError, match=r"labels.npy: a single number"):
        load_source(DataSource(kind="npy_dir", path=str(root)), "data.test")


def test_synthetic_digits_are_deterministic_and_disjoint() -> None:
    a = load_source(DataSource(kind="synthetic", generator="digits", split="test", count=50), "t")
    b = load_source(DataSource(kind="synthetic", generator="digits", split="test", count=50), "t")
    c = load_source(DataSource(kind="synthetic", generator="digits", split="calibration", count=300), "t")
    assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images, strict=True))
    hashes = {im.tobytes() for im in a.images}
    assert not hashes & {im.tobytes() for im in c.images}
    assert set(a.labels.tolist()) <= set(range(10))


def test_uint8_model_ready_arrays_are_flagged_as_unscaled_images(tmp_path: Path) -> None:
    from engine.data import unscaled_images

    p = tmp_path / "u8.npz"
    np.savez(p, x=np.full((3, 4, 4, 1), 200, np.uint8), y=np.arange(3))
    raw = load_source(DataSource(kind="npz", path=str(p)), "data.test")
    msg = unscaled_images(raw, "data.test")
    assert msg.startswith(f"data.test ({p}): uint8 arrays with values up to 200 go to the model as they are")
    assert unscaled_images(raw.subset(np.arange(2)), "data.test") == msg  # a drawn subset too
    np.savez(p, x=np.full((3, 4, 4, 1), 0.5, np.float32), y=np.arange(3))  # already scaled
    assert unscaled_images(load_source(DataSource(kind="npz", path=str(p)), "data.test"), "data.test") == ""


def test_hidden_and_system_files_are_skipped_and_counted_not_fatal(tmp_path: Path) -> None:
    from engine.events import Log

    root = tmp_path / "imgs"
    _image_tree(root)
    (root / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # not an image
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "dog" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "__MACOSX" / "cat").mkdir(parents=True)  # a zip's twin tree: not a class
    (root / "__MACOSX" / "cat" / "._1.png").write_bytes(b"\x00\x05\x16\x07")
    events: list = []
    raw = load_source(DataSource(kind="images", path=str(root)), "data.calibration", events.append)
    assert len(raw) == 6 and raw.class_names == ("cat", "dog")
    assert sorted(raw.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    (log,) = [e for e in events if isinstance(e, Log)]
    assert log.level == "warning" and "skipped 4 hidden or system files" in log.message


def test_one_label_for_an_unbatched_item_names_the_missing_axis(tmp_path: Path) -> None:
    p = tmp_path / "one.npz"
    np.savez(p, x=np.zeros((8, 8, 2), np.float32), y=np.array([3]))
    with pytest.raises(DataError) as info:
        load_source(DataSource(kind="npz", path=str(p), y="y"), "data.test")
    msg = str(info.value)
    assert "1 label for an array 'x' of shape (8, 8, 2)" in msg and "batch axis" in msg
    assert "1 labels" not in msg


def test_16_bit_pngs_read_on_the_8_bit_scale(tmp_path: Path) -> None:
    from engine.config import PreprocessConfig
    from engine.preprocess import PreprocessSpec, preprocess

    root = tmp_path / "imgs"
    root.mkdir()
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    cv2.imwrite(str(root / "deep.png"), ramp)  # 16-bit grey PNG
    cv2.imwrite(str(root / "flat.png"), (ramp // 257).astype(np.uint8))
    raw = load_source(DataSource(kind="images", path=str(root)), "data.calibration")
    spec = PreprocessSpec.resolve(PreprocessConfig(), (8, 8, 1))
    deep, flat = preprocess(raw.images, spec)
    assert float(deep.max()) == pytest.approx(1.0) and float(deep.min()) == 0.0
    assert np.abs(deep - flat).max() <= 1 / 255  # the same scale, up to 8-bit rounding


def test_grey_images_for_a_colour_model_are_counted() -> None:
    from engine.data import RawData, grey_images

    raw = RawData("imgs", images=[np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.uint8),
                                  np.zeros((8, 8, 1), np.uint8)])
    msg = grey_images(raw, "data.test", channels=3)
    assert "data.test (imgs): 2 of 3 images are greyscale" in msg and "copied to all three" in msg
    assert grey_images(raw, "data.test", channels=1) == ""


def test_progress_goes_to_the_stage_that_loads_the_data(tmp_path: Path) -> None:
    """QAT's train split loads in stage qat_data: its progress under ``data`` moved the
    finished data row of the run again (the monitor keys rows by stage)."""
    from engine.events import Progress

    _image_tree(tmp_path / "imgs")
    for src in (DataSource(kind="images", path=str(tmp_path / "imgs")),
                DataSource(kind="synthetic", generator="digits", split="train", count=7)):
        seen: list[Progress] = []
        load_source(src, "data.train", seen.append, stage="qat_data")
        assert seen and {p.stage for p in seen} == {"qat_data"}
        assert all(p.done <= (p.total or 0) for p in seen)
        assert seen[-1].done == len(load_source(src, "data.train"))
    seen = []
    load_source(DataSource(kind="images", path=str(tmp_path / "imgs")), "data.test", seen.append)
    assert [(p.stage, p.done, p.total) for p in seen] == [("data", i, 6) for i in range(1, 7)]
