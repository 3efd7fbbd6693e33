"""Noise files in SCN's and EAC's formats: hand-made files read, written files read back, and
a noise file applied to the training labels of a RAF-DB or an ImageFolder dataset."""
import numpy as np
import pytest
from PIL import Image

from scn.data import DatasetError, load_dataset
from scn.noise_files import (NoiseFileError, eac_file_name, match_names, read_noise_file, scn_file_name,
                             write_noise_file)

# As the official SCN repository ships them: the author's absolute paths, 0-based labels.
OFFICIAL_SCN = ("/home/someone/RAFDB_DATA/aligned/train_00001_aligned.jpg 4\n"
                "/home/someone/RAFDB_DATA/aligned/train_00002_aligned.jpg 0\n"
                "/home/someone/RAFDB_DATA/aligned/train_00003_aligned.jpg 6\n")
# As EAC's noise01.txt: RAF-DB's own names and 1-based labels.
EAC = "train_00001.jpg 5\ntrain_00002.jpg 1\ntrain_00003.jpg 7\n"


def test_hand_made_files_of_both_formats_read_to_the_same_labels(tmp_path):
    (tmp_path / "0.1noise_train.txt").write_text(OFFICIAL_SCN)
    (tmp_path / "noise01.txt").write_text(EAC)
    scn, scn_format = read_noise_file(tmp_path / "0.1noise_train.txt")
    eac, eac_format = read_noise_file(tmp_path / "noise01.txt")
    assert (scn_format, eac_format) == ("scn", "eac")
    assert list(scn.values()) == list(eac.values()) == [4, 0, 6]
    train = ["train_00001.jpg", "train_00002.jpg", "train_00003.jpg", "train_00004.jpg"]
    assert match_names(scn, train) == match_names(eac, train) == dict(zip(train, [4, 0, 6]))


@pytest.mark.parametrize("format", ["scn", "eac"])
def test_written_files_read_back(tmp_path, format):
    names = [f"train_{i:05d}.jpg" for i in range(1, 15)]
    labels = np.arange(14) % 7
    path = write_noise_file(tmp_path / "noise.txt", names, labels, format=format)
    first = path.read_text().splitlines()[0]
    assert first == ("Image/aligned/train_00001_aligned.jpg 0" if format == "scn" else "train_00001.jpg 1")
    read, detected = read_noise_file(path)
    assert detected == format
    assert match_names(read, names) == dict(zip(names, labels.tolist()))


def test_file_names_of_the_two_repositories():
    assert (scn_file_name(0.1), scn_file_name(0.3)) == ("0.1noise_train.txt", "0.3noise_train.txt")
    assert (eac_file_name(0.1), eac_file_name(0.2), eac_file_name(0.3)) == ("noise01.txt", "noise02.txt",
                                                                          "noise03.txt")


@pytest.mark.parametrize("text, format, message", [
    ("train_00001.jpg 8\n", None, r"line 1: label 8 is outside 1–7, the EAC format's range"),
    ("aligned/train_00001_aligned.jpg 7\n", None, r"line 1: label 7 is outside 0–6, the SCN format's range"),
    ("train_00001.jpg 0\n", "eac", r"label 0 is outside 1–7"),
    ("aligned/train_00001_aligned.jpg 1\ntrain_00002.jpg 1\n", None, "line 2 names an image without"),
    ("train_00001.jpg 1\ntrain_00001.jpg 2\n", None, "lines 1 and 2: train_00001.jpg is listed twice"),
    ("train_00001.jpg happy\n", None, "line 1: expected 'NAME LABEL'"),
    ("\n\n", None, "holds no labels"),
    ("train_00001.jpg 1\n", "csv", "format must be one of scn, eac"),
])
def test_bad_files_are_refused_with_the_line(tmp_path, text, format, message):
    path = tmp_path / "noise.txt"
    path.write_text(text)
    with pytest.raises(NoiseFileError, match=message):
        read_noise_file(path, format=format)


def test_names_outside_the_training_set_are_refused():
    with pytest.raises(NoiseFileError, match="lists test images .*test_00001.jpg"):
        match_names({"test_00001.jpg": 1}, ["train_00001.jpg"], test_names=["test_00001.jpg"])
    with pytest.raises(NoiseFileError, match="not in the training set: train_00009.jpg"):
        match_names({"train_00009.jpg": 1}, ["train_00001.jpg"])


def test_imagefolder_paths_match_by_their_ending_and_bare_names_only_when_unique():
    train = ["train/happy/a.jpg", "train/sad/a.jpg", "train/sad/b.jpg"]
    noisy = {"/data/faces/train/happy/a.jpg": 4, "b.jpg": 3}
    assert match_names(noisy, train) == {"train/happy/a.jpg": 4, "train/sad/b.jpg": 3}
    with pytest.raises(NoiseFileError, match="not in the training set: a.jpg"):
        match_names({"a.jpg": 1}, train)


def test_a_noise_file_replaces_only_the_training_labels_it_lists(tiny_rafdb, tmp_path):
    clean = load_dataset(tiny_rafdb, image_size=16)
    path = tmp_path / "0.1noise_train.txt"
    path.write_text("/elsewhere/aligned/train_00002_aligned.jpg 6\n")
    noisy = load_dataset(tiny_rafdb, image_size=16, noise_file=path)
    expected = clean.train.labels.clone()
    expected[1] = 6
    assert noisy.train.labels.tolist() == expected.tolist()
    assert noisy.test.labels.tolist() == clean.test.labels.tolist()
    path.write_text("test_00001.jpg 3\n")
    with pytest.raises(DatasetError, match="noise files change training labels only"):
        load_dataset(tiny_rafdb, image_size=16, noise_file=path)


def test_a_noise_file_applies_to_an_imagefolder_dataset(tmp_path):
    for split, classes in (("train", ("happy", "sad")), ("test", ("happy", "sad"))):
        for name in classes:
            (tmp_path / "faces" / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / "faces" / split / name / "x.png")
    (tmp_path / "noise01.txt").write_text("train/happy/x.png 6\n")  # 1-based: anger
    data = load_dataset(tmp_path / "faces", format="imagefolder", image_size=8,
                        noise_file=tmp_path / "noise01.txt")
    labels = dict(zip(data.train.names, data.train.labels.tolist()))
    assert labels == {"train/happy/x.png": 5, "train/sad/x.png": 4}


def test_a_noise_file_listing_part_of_the_training_set_is_logged_as_a_warning(tiny_rafdb, tmp_path):
    path = tmp_path / "0.1noise_train.txt"
    path.write_text("train_00001.jpg 2\ntrain_00002.jpg 3\n")
    data = load_dataset(tiny_rafdb, image_size=16, noise_file=path)
    assert data.warnings == [f"the noise file {path} lists 2 of the 48 training images; the other 46 keep "
                             "the dataset's labels (a noise file lists every training image: is this one cut short?)"]
    names = [f"train_{i:05d}.jpg" for i in range(1, 49)]
    write_noise_file(path, names, [0] * 48, format="eac")
    assert load_dataset(tiny_rafdb, image_size=16, noise_file=path).warnings == []
