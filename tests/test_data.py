import pytest
import torch
from PIL import Image

from scn import augment
from scn.data import (RAFDB_IMAGE_DIR, RAFDB_LABEL_FILE, DatasetError, check_dataset,
                      load_dataset, split_validation)
from tests.helpers import class_image, write_rafdb


def test_rafdb_layout_loads_both_splits(tiny_rafdb):
    data = load_dataset(tiny_rafdb, image_size=24)
    assert len(data.train) == 48 and len(data.test) == 21
    assert data.train.images.shape == (48, 3, 24, 24) and data.train.images.dtype == torch.uint8
    assert data.train.names[0] == "train_00001.jpg"
    assert data.train.labels[:8].tolist() == [0, 1, 2, 3, 4, 5, 6, 0]  # 1-based file → 0-based


def test_missing_label_file_is_named(tmp_path):
    (tmp_path / "Image" / "aligned").mkdir(parents=True)
    with pytest.raises(DatasetError, match="label file not found: .*list_patition_label.txt"):
        load_dataset(tmp_path, image_size=24)


def test_label_outside_range_names_line(tiny_rafdb):
    path = tiny_rafdb / RAFDB_LABEL_FILE
    lines = path.read_text().splitlines()
    lines[2] = "train_00003.jpg 8"
    path.write_text("\n".join(lines))
    with pytest.raises(DatasetError, match=r"line 3: label 8 is outside 1–7"):
        load_dataset(tiny_rafdb, image_size=24)


def test_malformed_label_line_is_named(tiny_rafdb):
    path = tiny_rafdb / RAFDB_LABEL_FILE
    path.write_text(path.read_text() + "train_99999.jpg happy\n")
    with pytest.raises(DatasetError, match=r"line 70: expected 'NAME LABEL'"):
        load_dataset(tiny_rafdb, image_size=24)


def test_corrupt_and_missing_images_are_named_or_skipped(tiny_rafdb):
    corrupt = tiny_rafdb / RAFDB_IMAGE_DIR / "train_00004_aligned.jpg"
    corrupt.write_bytes(corrupt.read_bytes()[:40])
    (tiny_rafdb / RAFDB_IMAGE_DIR / "test_00002_aligned.jpg").unlink()
    with pytest.raises(DatasetError, match=r"train_00004_aligned.jpg: unreadable") as error:
        load_dataset(tiny_rafdb, image_size=24)
    assert "--skip-bad" in str(error.value)
    data = load_dataset(tiny_rafdb, image_size=24, skip_bad=True)
    assert len(data.train) == 47 and "train_00004.jpg" not in data.train.names
    assert len(data.test) == 20 and any("test_00002_aligned.jpg: missing" in b for b in data.test.bad)


def test_noise_file_replaces_train_labels(tiny_rafdb, tmp_path):
    noise = tmp_path / "0.1noise_train.txt"
    noise.write_text("train_00001.jpg 7\n")
    data = load_dataset(tiny_rafdb, image_size=24, noise_file=noise)
    assert data.train.labels[0].item() == 6
    noise.write_text("train_77777.jpg 2\n")
    with pytest.raises(DatasetError, match="not in the training set: train_77777.jpg"):
        load_dataset(tiny_rafdb, image_size=24, noise_file=noise)


def test_imagefolder_maps_class_names_not_positions(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for folder, count in (("angry", 3), ("Happy", 2), ("surprise", 2)):
            (tmp_path / split / folder).mkdir(parents=True)
            for i in range(count):
                class_image(0, size=20, rng=rng).save(tmp_path / split / folder / f"{i}.png")
    data = load_dataset(tmp_path, format="imagefolder", image_size=16)
    assert sorted(set(data.train.labels.tolist())) == [0, 3, 5]  # surprise, happiness, anger
    assert data.train.names[0].startswith("train/Happy/")


def test_imagefolder_unknown_class_and_empty_folder(tmp_path):
    (tmp_path / "bored").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "bored" / "a.png")
    with pytest.raises(DatasetError, match="unknown expression class 'bored'"):
        load_dataset(tmp_path, format="imagefolder", image_size=16)
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "nowhere", format="imagefolder", image_size=16)


def test_validation_split_is_seeded_and_disjoint(tiny_rafdb):
    data = load_dataset(tiny_rafdb, image_size=24)
    train, val = split_validation(data.train, fraction=0.25, seed=3)
    again, _ = split_validation(data.train, fraction=0.25, seed=3)
    assert len(val) == 12 and len(train) == 36
    assert not set(train.names) & set(val.names)
    assert train.names == again.names


def test_train_augmentation_is_reproducible_and_normalised():
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    first = augment.train_batch(images, generator=torch.Generator().manual_seed(1), mean=(0.5,) * 3,
                                std=(0.25,) * 3)
    second = augment.train_batch(images, generator=torch.Generator().manual_seed(1), mean=(0.5,) * 3,
                                 std=(0.25,) * 3)
    plain = augment.normalize(images, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert torch.equal(first, second) and first.dtype == torch.float32
    changed = [(first[i] != plain[i]).any().item() for i in range(16)]
    assert 0 < sum(changed) < 16 + 1
    erased = [(first[i] == 0).all(dim=0).sum().item() > 0 for i in range(16)]
    assert any(erased)


def test_check_dataset_accepts_what_the_trainer_reads(tiny_rafdb, tmp_path):
    assert check_dataset(tiny_rafdb, format="rafdb") is None
    for split in ("train", "test"):
        for label in ("happy", "sad"):
            folder = tmp_path / "faces" / split / label
            folder.mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(folder / "a.png")
    assert check_dataset(tmp_path / "faces", format="imagefolder") is None


def test_check_dataset_says_what_is_wrong(tiny_rafdb, tmp_path):
    assert "not found" in check_dataset(tmp_path / "nowhere", format="rafdb")
    assert check_dataset("  ", format="rafdb") == "Enter the dataset folder."
    (tmp_path / "empty").mkdir()
    assert "list_patition_label.txt" in check_dataset(tmp_path / "empty", format="rafdb")
    assert "class folders" in check_dataset(tmp_path / "empty", format="imagefolder")
    (tiny_rafdb / "Image" / "aligned" / "train_00001_aligned.jpg").unlink()
    assert "train images are missing" in check_dataset(tiny_rafdb, format="rafdb")


def test_byte_order_mark_does_not_hide_the_first_image(tiny_rafdb):
    path = tiny_rafdb / RAFDB_LABEL_FILE
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    data = load_dataset(tiny_rafdb, image_size=24)
    assert len(data.train) == 48 and data.train.names[0] == "train_00001.jpg"


def test_an_image_listed_twice_is_refused_with_both_lines(tiny_rafdb, tmp_path):
    path = tiny_rafdb / RAFDB_LABEL_FILE
    original = path.read_text()
    path.write_text(original + "train_00002.jpg 5\n")
    with pytest.raises(DatasetError, match=r"lines 2 and 70: train_00002.jpg is listed twice"):
        load_dataset(tiny_rafdb, image_size=24)
    path.write_text(original)
    noise = tmp_path / "noise.txt"
    noise.write_text("train_00001.jpg 7\ntrain_00001.jpg 6\n")
    with pytest.raises(DatasetError, match=r"noise.txt, lines 1 and 2"):
        load_dataset(tiny_rafdb, image_size=24, noise_file=noise)


def test_training_decodes_images_as_predict_does(tiny_rafdb):
    import numpy as np

    from scn.images import load_image

    folder = tiny_rafdb / RAFDB_IMAGE_DIR
    # 16-bit grayscale at a mid grey: a plain 8-bit conversion would clip it to white.
    Image.fromarray(np.full((32, 32), 20000, dtype=np.uint16)).save(folder / "train_00001_aligned.png")
    # Stored sideways with an EXIF tag saying "rotate": the top half is bright once upright.
    sideways = np.zeros((32, 32, 3), dtype=np.uint8)
    sideways[:, 16:] = 255
    exif = Image.Exif()
    exif[0x0112] = 8  # display rotated a quarter turn counter-clockwise: the right half goes on top
    Image.fromarray(sideways).save(folder / "train_00002_aligned.jpg", exif=exif, quality=100)
    path = tiny_rafdb / RAFDB_LABEL_FILE
    path.write_text(path.read_text().replace("train_00001.jpg", "train_00001.png"))
    data = load_dataset(tiny_rafdb, image_size=32)
    grey = data.train.images[data.train.names.index("train_00001.png")]
    expected = np.asarray(load_image(folder / "train_00001_aligned.png")).transpose(2, 0, 1)
    assert torch.equal(grey, torch.from_numpy(expected.copy())) and 70 < grey.float().mean() < 85
    upright = data.train.images[data.train.names.index("train_00002.jpg")].float().mean(dim=(0, 2))
    assert upright[:16].mean() > 200 and upright[16:].mean() < 50
