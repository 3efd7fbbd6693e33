import pytest
import torch

from scn.classes import CLASS_NAMES, class_index
from scn.data import DatasetError, check_dataset, list_splits, load_dataset
from scn.formats import fer2013
from tests.helpers import write_fer2013


def test_fer2013_splits_by_usage_and_maps_emotions_by_name(tmp_path):
    root = write_fer2013(tmp_path / "fer")
    data = load_dataset(root, format="fer2013", image_size=32)
    assert data.class_names == CLASS_NAMES
    assert (len(data.train), len(data.val), len(data.test)) == (24, 8, 8)
    # FER2013 counts 0 angry, 1 disgust, …, 5 surprise, 6 neutral.
    assert data.train.labels[:7].tolist() == [class_index(n) for n in
                                              ("anger", "disgust", "fear", "happiness", "sadness", "surprise",
                                               "neutral")]
    assert data.train.names[0] == "fer0000000.png" and data.val.names[0] == "fer0000024.png"
    assert data.train.images.shape == (24, 3, 32, 32) and data.train.images.dtype == torch.uint8
    # Grey faces become three equal channels, as a grey photo does in predict.
    assert torch.equal(data.train.images[:, 0], data.train.images[:, 2])


def test_a_noise_file_changes_fer2013_training_labels_by_image_name(tmp_path):
    root = write_fer2013(tmp_path / "fer")
    noise = tmp_path / "noise.txt"
    noise.write_text("fer0000003.png 0\n")
    splits, _ = list_splits(root, format="fer2013", noise_file=noise, noise_format="scn")
    assert splits["train"][1][3] == 0 and splits["train"][1][4] == class_index("sad")


def _rewrite(path, edit):
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("edit, message", [
    (lambda lines: lines.__setitem__(-1, lines[-1][:500]), "line 41: 2 fields where the header has 3"),
    (lambda lines: lines.__setitem__(-1, lines[-1][:1]), "line 41: 1 fields where the header has 3"),
    (lambda lines: lines.__setitem__(-1, lines[-1][:500] + ",PrivateTest"),
     r"line 41: \d+ pixel values where a 48×48 face has 2304"),
    (lambda lines: lines.__setitem__(5, "7" + lines[5][1:]), "line 6: emotion 7 is outside 0–6"),
    (lambda lines: lines.__setitem__(5, "x" + lines[5][1:]), "line 6: emotion 'x' is not a whole number"),
    (lambda lines: lines.__setitem__(3, lines[3].replace("Training", "Train")), "line 4: Usage 'Train' is not one of"),
    (lambda lines: lines.__setitem__(0, "label,pixels,Usage"), "line 1: no column 'emotion'"),
    (lambda lines: lines.__setitem__(slice(None), [l for l in lines if "PrivateTest" not in l]),
     "has no PrivateTest rows"),
])
def test_a_wrong_or_truncated_fer2013_csv_is_named_with_its_line(tmp_path, edit, message):
    root = write_fer2013(tmp_path / "fer")
    _rewrite(root / fer2013.CSV_NAME, edit)
    with pytest.raises(DatasetError, match=message):
        list_splits(root, format="fer2013")
    assert str(root / fer2013.CSV_NAME) in check_dataset(root, format="fer2013")


def test_pixels_that_are_not_grey_values_name_the_row(tmp_path):
    root = write_fer2013(tmp_path / "fer")
    _rewrite(root / fer2013.CSV_NAME, lambda lines: lines.__setitem__(2, lines[2].replace(" ", " 300 ", 1)
                                                                     .rsplit(" ", 1)[0] + ",Training"))
    with pytest.raises(DatasetError, match=r"1 of 24 train images could not be read(.|\n)*line 3: unreadable \(pixel values outside 0–255\)"):
        load_dataset(root, format="fer2013", image_size=16)
    assert len(load_dataset(root, format="fer2013", image_size=16, skip_bad=True).train) == 23


def test_a_missing_csv_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    assert check_dataset(tmp_path / "empty", format="fer2013") == f"{tmp_path / 'empty' / 'fer2013.csv'} not found"
