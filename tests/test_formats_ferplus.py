import json

import pytest

from scn.classes import CLASS_NAMES, CLASS_NAMES_WITH_CONTEMPT
from scn.cli import main
from scn.data import DatasetError, check_dataset, list_splits, load_dataset
from scn.formats import ferplus
from scn.store import RunReader
from tests.helpers import write_ferplus

VOTE = {name: i for i, name in enumerate(ferplus.VOTES)}


def votes(**counts) -> list:
    return [counts.get(name, 0) for name in ferplus.VOTES]


@pytest.mark.parametrize("counts, expected", [
    (votes(happiness=6, neutral=4), "happiness"),
    (votes(happiness=5, neutral=5), None),  # a tie has no majority
    (votes(fear=4, sadness=3, anger=3), None),  # the most votes, yet not more than half
    (votes(fear=3, sadness=1, anger=1, disgust=1), "fear"),  # single votes are outliers, dropped first
    (votes(neutral=1, happiness=1, fear=1), None),
    (votes(unknown=7, happiness=3), "unknown"),
    (votes(NF=10), "NF"),
])
def test_majority_follows_the_ferplus_authors(counts, expected):
    found = ferplus.majority(counts)
    assert (None if found is None else ferplus.VOTES[found]) == expected


def test_ferplus_takes_the_majority_label_by_name_and_drops_the_rest(tmp_path):
    extra = [("Training", votes(happiness=5, neutral=5)), ("Training", votes(unknown=8, fear=2)),
             ("Training", votes(NF=10)), ("PrivateTest", votes(fear=3, sadness=3, anger=3, disgust=1))]
    root = write_ferplus(tmp_path / "ferplus", extra=extra)
    splits, class_names = list_splits(root, format="ferplus")
    assert class_names == CLASS_NAMES_WITH_CONTEMPT
    assert [len(splits[s][0]) for s in ("train", "val", "test")] == [24, 8, 8]
    names, labels, _ = splits["train"]
    assert [class_names[label] for label in labels[:8]] == ["neutral", "happiness", "surprise", "sadness",
                                                          "anger", "disgust", "fear", "contempt"]
    assert names[0] == "fer0000000.png" and "fer0000040.png" not in names  # the tie
    seven, seven_names = list_splits(root, format="ferplus", contempt=False)
    assert seven_names == CLASS_NAMES and len(seven["train"][0]) == 21
    assert set(seven["train"][0]) == {n for n, label in zip(names, labels) if class_names[label] != "contempt"}


def test_ferplus_needs_both_files_row_for_row(tmp_path):
    root = write_ferplus(tmp_path / "ferplus")
    new = root / ferplus.CSV_NAME
    lines = new.read_text().splitlines()
    new.write_text("\n".join(lines[:-3]) + "\n")
    assert "fer2013new.csv has 37 rows and" in check_dataset(root, format="ferplus")
    new.write_text("\n".join(lines[:-1] + [lines[-1].replace("PrivateTest", "PublicTest")]) + "\n")
    with pytest.raises(DatasetError, match="fer2013new.csv, line 41: Usage 'PublicTest' where fer2013.csv line 41"):
        list_splits(root, format="ferplus")
    new.write_text("\n".join(lines[:5] + [lines[5].replace(",8,", ",eight,", 1)] + lines[6:]) + "\n")
    with pytest.raises(DatasetError, match="fer2013new.csv, line 6: .* 'eight' is not a whole number"):
        list_splits(root, format="ferplus")
    new.write_text("\n".join(lines[:-1] + [lines[-1][:12]]) + "\n")
    with pytest.raises(DatasetError, match="line 41: 2 fields where the header has 12"):
        list_splits(root, format="ferplus")


def test_cli_trains_on_ferplus_and_records_the_dataset(tmp_path, capsys):
    root = write_ferplus(tmp_path / "ferplus")
    run_dir = tmp_path / "runs" / "ferplus"
    assert main(["train", "--format", "ferplus", "--data", str(root), "--run-dir", str(run_dir), "--epochs", "1",
                 "--image-size", "32", "--batch-size", "16", "--no-progress", "--threads", "1"]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["format"] == "ferplus" and config["class_names"] == list(CLASS_NAMES_WITH_CONTEMPT)
    dataset = RunReader(run_dir).meta("dataset")
    assert dataset["sizes"] == {"train": 24, "val": 8, "test": 8}
    assert dataset["classes"] == list(CLASS_NAMES_WITH_CONTEMPT)
    assert load_dataset(root, format="ferplus", image_size=8).val.names[0] == "fer0000024.png"
