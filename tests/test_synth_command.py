"""`python -m scn synth`: writes a benchmark or a contact sheet; bad input exits 2 with a message."""
import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image

from scn.cli import main


def test_writes_a_benchmark(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["synth", "--out", str(out), "--train", "14", "--test", "7", "--size", "48",
                 "--noise", "0.1", "--balance", "uniform", "--seed", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    lines = (out / "EmoLabel/list_patition_label.txt").read_text().splitlines()
    assert len(lines) == 21 and (out / "EmoLabel/0.1noise_train.txt").exists()


def test_writes_annotator_votes_and_ambiguity(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["synth", "--out", str(out), "--train", "40", "--test", "5", "--size", "32", "--noise", "0.2",
                 "--noise-model", "annotators", "--annotators", "3", "--workers", "1"]) == 0
    truth = pd.read_csv(out / "groundtruth.csv", keep_default_na=False)
    train = truth[truth["split"] == "train"]
    assert train["is_noisy"].mean() == pytest.approx(0.2, abs=0.03)
    assert set(truth["noise_model"]) == {"annotators"}
    votes = [[int(v) for v in text.split()] for text in train["votes"]]
    assert all(len(v) == 3 for v in votes) and (truth.loc[truth["split"] == "test", "votes"] == "").all()
    majority = [max(set(v), key=v.count) for v in votes]
    unanimous = [len(set(v)) < 3 for v in votes]  # a 1-1-1 split goes to the most skilled voter
    assert all(m == g for m, g, u in zip(majority, train["given_label"], unanimous) if u)
    assert truth["ambiguity"].astype(float).between(0, 1).all()


@pytest.mark.parametrize("arguments, message", [
    (["--noise-model", "annotators", "--noise", "0.95", "--train", "20", "--test", "1", "--size", "32",
      "--workers", "1"], "error: the annotator panel cannot get 95%"),
    (["--train", "-5"], "error: train must be a non-negative integer"),
    (["--noise", "1.5"], "error: noise must be a probability in [0, 1)"),
    (["--size", "0"], "error: size must be an integer from 32"),
    (["--workers", "0"], "error: --workers must be at least 1"),
])
def test_bad_arguments_exit_2_with_the_message(tmp_path, capsys, arguments, message):
    assert main(["synth", "--out", str(tmp_path / "x"), *arguments]) == 2
    err = capsys.readouterr().err
    # The last line: a refusal found after rendering follows the progress bar.
    assert err.strip().splitlines()[-1].startswith(message) and "Traceback" not in err


def test_missing_out_is_an_error(capsys):
    assert main(["synth"]) == 2
    assert "error: --out DIR is required" in capsys.readouterr().err


def test_unwritable_output_from_the_shell_prints_no_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = subprocess.run([sys.executable, "-m", "scn", "synth", "--out", str(blocker / "sub"),
                             "--train", "7", "--test", "0"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot write to output directory")
    assert "Traceback" not in result.stderr


def test_contact_sheet(tmp_path, capsys):
    path = tmp_path / "sheet.png"
    assert main(["synth", "--contact-sheet", str(path)]) == 0
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= 700 and image.height >= 900
