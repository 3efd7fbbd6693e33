"""The benchmark writer: RAF-DB layout, label counts, noise protocol, determinism, bad arguments."""
import csv
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from scn.classes import CLASS_NAMES
from scn.synth import generate_dataset
from scn.noise_files import read_noise_file
from scn.synth.dataset import class_counts
from scn.synth.noise import symmetric_labels as noisy_labels

LINE = re.compile(r"^(train|test)_\d{5}\.jpg [1-7]$")


@pytest.fixture(scope="module")
def noisy_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "noisy"
    generate_dataset(out, train=140, test=35, size=64, seed=3, noise=0.3, workers=1, progress=False)
    return out


def read_labels(path):
    return dict(line.split() for line in path.read_text().splitlines())


def read_truth(out):
    with open(out / "groundtruth.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_layout_parses_and_images_decode_at_size(noisy_set):
    lines = (noisy_set / "EmoLabel/list_patition_label.txt").read_text().splitlines()
    assert len(lines) == 175
    assert all(LINE.match(line) for line in lines)
    for line in lines:
        name = line.split()[0]
        with Image.open(noisy_set / "Image/aligned" / name.replace(".jpg", "_aligned.jpg")) as image:
            assert image.format == "JPEG" and image.mode == "RGB" and image.size == (64, 64)


def test_label_file_matches_ground_truth(noisy_set):
    labels = read_labels(noisy_set / "EmoLabel/list_patition_label.txt")
    truth = read_truth(noisy_set)
    assert [row["image"] for row in truth] == list(labels)
    assert Counter(row["split"] for row in truth) == {"train": 140, "test": 35}
    for row in truth:
        assert labels[row["image"]] == row["given_label"]
        assert CLASS_NAMES[int(row["true_label"]) - 1] == row["true_class"]
        assert int(row["is_noisy"]) == (row["given_label"] != row["true_label"])
    for split, total in (("train", 140), ("test", 35)):
        counts = Counter(row["true_class"] for row in truth if row["split"] == split)
        assert counts == {k: v for k, v in class_counts(total).items() if v}


def test_noise_touches_only_training_labels_and_has_noise_files_in_both_formats(noisy_set):
    truth = read_truth(noisy_set)
    assert all(row["is_noisy"] == "0" for row in truth if row["split"] == "test")
    noisy = [int(row["is_noisy"]) for row in truth if row["split"] == "train"]
    assert 0.15 < np.mean(noisy) < 0.45
    given = {row["image"]: int(row["given_label"]) - 1 for row in truth if row["split"] == "train"}
    scn_file = (noisy_set / "EmoLabel/0.3noise_train.txt").read_text().splitlines()
    assert scn_file[0] == f"Image/aligned/train_00001_aligned.jpg {given['train_00001.jpg']}"
    scn_labels, scn_format = read_noise_file(noisy_set / "EmoLabel/0.3noise_train.txt")
    assert scn_format == "scn"
    assert {k.split("/")[-1].replace("_aligned", ""): v for k, v in scn_labels.items()} == given
    assert read_labels(noisy_set / "EmoLabel/noise03.txt") == {k: str(v + 1) for k, v in given.items()}
    assert read_noise_file(noisy_set / "EmoLabel/noise03.txt") == (given, "eac")
    assert {row["noise_model"] for row in truth} == {"symmetric"}
    assert all(0.0 <= float(row["ambiguity"]) <= 1.0 for row in truth)


def test_noise_rate_and_targets_follow_the_scn_protocol():
    true = np.arange(70000) % 7
    noisy = noisy_labels(true, noise=0.2, seed=1)
    flipped = noisy != true
    assert abs(flipped.mean() - 0.2) < 0.01
    # A flipped label goes to each of the six other classes about equally often.
    shifts = np.bincount((noisy[flipped] - true[flipped]) % 7, minlength=7)
    assert shifts[0] == 0 and shifts[1:].min() > 0.9 * shifts[1:].max()
    assert np.array_equal(noisy_labels(true, noise=0.0, seed=1), true)


def test_class_counts_follow_rafdb_or_uniform():
    counts = class_counts(12271)
    assert counts == {"surprise": 1290, "fear": 281, "disgust": 717, "happiness": 4772,
                      "sadness": 1982, "anger": 705, "neutral": 2524}
    assert sum(class_counts(1000).values()) == 1000
    assert class_counts(1000)["happiness"] == 389
    assert set(class_counts(70, balance="uniform").values()) == {10}


def test_same_seed_gives_same_bytes_whatever_the_workers(tmp_path):
    one = generate_dataset(tmp_path / "one", train=60, test=10, size=48, seed=5, noise=0.2, workers=1,
                           progress=False)
    two = generate_dataset(tmp_path / "two", train=60, test=10, size=48, seed=5, noise=0.2, workers=2,
                           progress=False)
    other = generate_dataset(tmp_path / "other", train=60, test=10, size=48, seed=6, noise=0.2, workers=1,
                             progress=False)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert len(files) == 70 + 4  # images, label list, the two noise files, ground truth
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)
    assert (one / "groundtruth.csv").read_bytes() != (other / "groundtruth.csv").read_bytes()


@pytest.mark.parametrize("options, message", [
    ({"train": -1}, "train must be a non-negative integer"),
    ({"test": -3}, "test must be a non-negative integer"),
    ({"train": 0, "test": 0}, "nothing to generate"),
    ({"size": 8}, "size must be an integer from 32"),
    ({"noise": 1.0}, r"noise must be a probability in \[0, 1\)"),
    ({"noise": -0.1}, r"noise must be a probability in \[0, 1\)"),
    ({"balance": "natural"}, "balance must be one of rafdb, uniform"),
])
def test_bad_arguments_raise_clear_errors(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        generate_dataset(tmp_path / "out", **{"train": 7, "test": 7, **options})
    assert not (tmp_path / "out").exists()


def test_unwritable_or_occupied_output_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot write to output directory"):
        generate_dataset(blocker / "sub", train=7, test=0)
    with pytest.raises(ValueError, match="exists and is not a directory"):
        generate_dataset(blocker, train=7, test=0)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty"):
        generate_dataset(tmp_path / "busy", train=7, test=0)
    generate_dataset(tmp_path / "busy", train=7, test=0, overwrite=True, progress=False)
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    assert len(list((tmp_path / "busy" / "Image/aligned").iterdir())) == 7


def test_the_rafdb_loader_reads_the_benchmark_with_its_noise_file(noisy_set):
    from scn.data import load_dataset

    truth = read_truth(noisy_set)
    given = {row["image"]: int(row["given_label"]) - 1 for row in truth}
    data = load_dataset(noisy_set, image_size=32)
    assert data.class_names == CLASS_NAMES
    assert len(data.train) == 140 and len(data.test) == 35
    assert tuple(data.train.images.shape[1:]) in ((32, 32, 3), (3, 32, 32))
    for split in (data.train, data.test):
        assert split.labels.tolist() == [given[name] for name in split.names]
    for noise_file in ("0.3noise_train.txt", "noise03.txt"):
        with_noise_file = load_dataset(noisy_set, image_size=32, noise_file=noisy_set / "EmoLabel" / noise_file)
        assert with_noise_file.train.labels.tolist() == data.train.labels.tolist()
