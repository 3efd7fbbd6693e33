import json

import numpy as np
import pytest
from PIL import Image

from scn import thumbnails
from scn.classes import CLASS_NAMES, CLASS_NAMES_WITH_CONTEMPT, class_index
from scn.cli import main
from scn.data import DatasetError, check_dataset, list_splits, load_dataset
from scn.formats import affectnet
from scn.store import RunReader
from tests.helpers import write_affectnet


def test_affectnet_maps_expressions_by_name_and_drops_none_uncertain_and_non_faces(tmp_path):
    root = write_affectnet(tmp_path / "affectnet", extra=(8, 9, 10))
    splits, class_names = list_splits(root, format="affectnet")
    assert class_names == CLASS_NAMES_WITH_CONTEMPT and set(splits) == {"train", "test"}
    names, labels, _ = splits["train"]
    assert len(names) == 24 and len(splits["test"][0]) == 8
    assert [class_names[label] for label in labels[:8]] == ["neutral", "happiness", "sadness", "surprise",
                                                          "fear", "disgust", "anger", "contempt"]
    seven, seven_names = list_splits(root, format="affectnet", contempt=False)
    assert seven_names == CLASS_NAMES and len(seven["train"][0]) == 21
    assert seven["train"][1][:7] == [class_index(n) for n in ("neutral", "happy", "sad", "surprise", "fear",
                                                              "disgust", "anger")]


def test_a_noise_file_changes_affectnet_training_labels_by_path(tmp_path):
    root = write_affectnet(tmp_path / "affectnet", train=8, test=2)
    noise = tmp_path / "noise.txt"
    noise.write_text("train0/train_003.jpg 0\n")
    names, labels, _ = list_splits(root, format="affectnet", noise_file=noise, noise_format="scn")[0]["train"]
    assert labels[3] == 0 and names[3] == "train0/train_003.jpg" and labels[4] == class_index("fear")


def test_affectnet_crops_the_face_box_and_finds_photos_in_a_flat_copy_too(tmp_path):
    root = write_affectnet(tmp_path / "affectnet", train=8, test=2)
    data = load_dataset(root, format="affectnet", image_size=48)
    photo = Image.open(root / affectnet.IMAGE_DIR / data.train.names[1]).convert("RGB")
    face = np.asarray(photo.crop((8, 4, 56, 52)), dtype=np.uint8).transpose(2, 0, 1)
    assert np.array_equal(data.train.images[1].numpy(), face)
    assert thumbnails.image_path(data=root, format="affectnet", name="train0/a.jpg") == \
        root / affectnet.IMAGE_DIR / "train0" / "a.jpg"
    # The lists beside the photos, without AffectNet's two top folders, read the same.
    flat = tmp_path / "flat"
    (root / affectnet.IMAGE_DIR).rename(flat)
    for name in affectnet.LISTS.values():
        (root / affectnet.LIST_DIR / name).rename(flat / name)
    assert load_dataset(flat, format="affectnet", image_size=48).train.names == data.train.names
    assert thumbnails.image_path(data=flat, format="affectnet", name="train0/a.jpg") == flat / "train0" / "a.jpg"


def _edit_row(root, line: int, column: str, value: str):
    path = root / affectnet.LIST_DIR / "training.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = value
    lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("column, value, message", [
    ("expression", "11", "training.csv, line 4: expression 11 is outside 0–10"),
    ("face_width", "0", r"training.csv, line 4: face box \(8, 4, 0, 48\) has no area"),
    ("face_x", "8.5", "training.csv, line 4: face_x '8.5' is not a whole number"),
    ("subDirectory_filePath", "", "training.csv, line 4: subDirectory_filePath is empty"),
])
def test_a_wrong_affectnet_row_is_named_with_its_line(tmp_path, column, value, message):
    root = write_affectnet(tmp_path / "affectnet", train=8, test=2)
    _edit_row(root, 4, column, value)
    with pytest.raises(DatasetError, match=message):
        list_splits(root, format="affectnet")


def test_truncated_lists_and_missing_photos_or_boxes_outside_them_are_named(tmp_path):
    root = write_affectnet(tmp_path / "affectnet", train=8, test=2)
    validation = root / affectnet.LIST_DIR / "validation.csv"
    validation.write_text(validation.read_text()[:-60])
    assert "validation.csv, line 3: 6 fields where the header has 9" in check_dataset(root, format="affectnet")
    validation.unlink()
    assert check_dataset(root, format="affectnet") == f"{root / 'validation.csv'} not found"
    root = write_affectnet(tmp_path / "again", train=8, test=2)
    (root / affectnet.IMAGE_DIR / "train0" / "train_002.jpg").unlink()
    _edit_row(root, 5, "face_x", "70")
    with pytest.raises(DatasetError, match=r"2 of 8 train images could not be read(.|\n)*train_002.jpg: missing"
                                           r"(.|\n)*train_003.jpg: unreadable \(face box \(70, 4, 48, 48\) lies outside"):
        load_dataset(root, format="affectnet", image_size=16)


def test_cli_trains_on_affectnet_with_seven_classes(tmp_path):
    root = write_affectnet(tmp_path / "affectnet", extra=(9,))
    run_dir = tmp_path / "runs" / "affectnet"
    assert main(["train", "--format", "affectnet", "--no-contempt", "--data", str(root), "--run-dir", str(run_dir),
                 "--epochs", "1", "--image-size", "32", "--batch-size", "16", "--no-progress", "--threads", "1"]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["class_names"] == list(CLASS_NAMES) and config["contempt"] is False
    dataset = RunReader(run_dir).meta("dataset")
    assert dataset["sizes"] == {"train": 19, "val": 2, "test": 7}


def _edit_training_list(root, edit):
    path = root / affectnet.LIST_DIR / affectnet.LISTS["train"]
    lines = path.read_text().splitlines()
    lines[1] = edit(lines[1])
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("name", ["../outside.jpg", "/etc/outside.jpg", "train0/../../outside.jpg"])
def test_an_affectnet_path_outside_the_dataset_folder_is_refused(tmp_path, name):
    root = write_affectnet(tmp_path / "affectnet", train=8, test=2)
    Image.new("RGB", (64, 64)).save(root / "outside.jpg")
    path = _edit_training_list(root, lambda line: name + line[line.index(","):])
    with pytest.raises(DatasetError, match=f"{path}, line 2: '{name}' lies outside the dataset folder"):
        list_splits(root, format="affectnet")


@pytest.mark.parametrize("box", ["-200,-200,48,48", "64,4,48,48", "8,70,48,48"])
def test_an_affectnet_face_box_off_the_photo_is_refused_not_trained_black(tmp_path, box):
    root = write_affectnet(tmp_path / "affectnet", train=8, test=2)
    _edit_training_list(root, lambda line: line.replace(",8,4,48,48,", f",{box},", 1))
    with pytest.raises(DatasetError, match=r"face box .* lies outside the 64×64 image"):
        load_dataset(root, format="affectnet", image_size=32)
