import logging
import numpy as np
import pytest
import torch

from scn import analysis, lock
from scn.checkpoint import load_checkpoint
from scn.cli import main
from scn.config import make_config
from scn.store import AppWriter, RunReader
from scn.train import train
from tests.helpers import interrupt_after, tiny_config


def test_two_epoch_run_fills_the_store(tiny_rafdb, tmp_path):
    run_dir = tmp_path / "run"
    assert train(tiny_config(tiny_rafdb), run_dir=run_dir, progress=False) == "finished"
    reader = RunReader(run_dir)
    status = reader.status()
    assert status["state"] == "finished" and not status["alive"]
    epochs = reader.epoch_metrics()
    assert epochs["epoch"].tolist() == [1, 2]
    assert epochs[["test_accuracy", "val_accuracy", "alpha_mean", "train_loss_rr"]].notna().all().all()
    steps = reader.step_metrics()
    assert len(steps) == 2 * 3 and steps["images_per_s"].gt(0).all()  # 42 train images / 16 = 3 steps
    attention = reader.attention(2)
    assert len(attention) == 42 and attention["alpha"].between(0, 1).all()
    assert attention["is_high"].mean() == pytest.approx(0.7, abs=0.1)
    relabels = reader.relabels()
    assert set(relabels["epoch"]) <= {2}  # relabeling starts at epoch 2
    assert epochs["relabels"].tolist() == [0, len(relabels)]
    confusion = reader.confusion(2)
    assert confusion.shape == (7, 7) and confusion.sum() == 21
    predictions = reader.predictions(2)
    assert len(predictions) == 21 and predictions["name"].str.startswith("test_").all()
    # The per-sample predictions are the confusion matrix's own, cell by cell.
    cells = np.zeros((7, 7), int)
    np.add.at(cells, (predictions["label"], predictions["pred"]), 1)
    assert cells.tolist() == confusion.tolist()
    probs = predictions[reader.class_names()].to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=0.01) and (probs.argmax(1) == predictions["pred"]).mean() > 0.9
    assert reader.samples("test").shape[0] == 21 and reader.samples("val").shape[0] == 6
    assert reader.config()["class_names"][0] == "surprise"
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert best["best"]["split"] == "val"
    assert (run_dir / "train.log").read_text().count("epoch ") >= 2


def test_every_training_sample_has_a_history(trained_runs):
    reader = RunReader(trained_runs["scn"])  # relabels from epoch 2, on a benchmark with ground truth
    attention, epochs = reader.attention(4), reader.epoch_metrics()
    assert attention["pred"].between(0, 6).all() and attention["p_given"].between(0, 1).all()
    assert (attention["p_max"] >= attention["p_given"] - 1e-3).all()
    # The epoch's train accuracy is over the labels each sample was trained with, so the recorded
    # predictions give it back; against the original labels only relabeled samples differ.
    last = epochs.iloc[-1]
    assert (attention["pred"] == attention["label"]).mean() == pytest.approx(last["train_accuracy"])
    assert (attention["pred"] == attention["original_label"]).mean() == pytest.approx(
        last["train_accuracy_original"])
    truth = analysis.match_groundtruth(reader.samples("train"), reader.groundtruth())["true_label"]
    assert (attention["pred"] == truth.to_numpy()).mean() == pytest.approx(last["train_accuracy_truth"])
    events = reader.relabels()
    event = events.iloc[-1]
    epoch = int(event["epoch"])
    history = reader.sample_history(int(event["idx"])).set_index("epoch")
    assert history.index.tolist() == [1, 2, 3, 4]
    assert history.at[epoch, "alpha"] == pytest.approx(event["alpha"], abs=1e-6)
    assert history.at[epoch, "label"] == event["old"]
    assert history.at[epoch, "p_given"] == pytest.approx(event["p_given"], abs=1e-3)
    assert history.at[epoch, "p_max"] == pytest.approx(event["p_max"], abs=1e-3)
    assert history.at[epoch, "pred"] == event["new"]
    assert history["alpha"].tolist() == [reader.attention(e)["alpha"][event["idx"]] for e in range(1, 5)]


def final_state(run_dir):
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    return checkpoint["model"], checkpoint["labels"]


def assert_same_run(a, b):
    model_a, labels_a = final_state(a)
    model_b, labels_b = final_state(b)
    for key in model_a:
        assert torch.equal(model_a[key], model_b[key]), key
    assert torch.equal(labels_a["current"], labels_b["current"])
    assert labels_a["history"] == labels_b["history"]


def test_a_run_on_decoded_images_on_disk_trains_as_one_in_memory(tiny_rafdb, tmp_path, monkeypatch):
    monkeypatch.setenv("SCN_STUDIO_CACHE", str(tmp_path / "cache"))
    runs = {mode: tmp_path / mode for mode in ("disk", "memory")}
    for mode, run_dir in runs.items():
        assert train(tiny_config(tiny_rafdb, epochs=1, relabel_epoch=1, decoded_cache=mode), run_dir=run_dir,
                     progress=False) == "finished"
    reader = RunReader(runs["disk"])
    assert reader.config()["decoded_cache"] == "disk" and reader.meta("dataset")["decoded_cache"] == "disk"
    assert "decoded images on disk" in (runs["disk"] / "train.log").read_text()
    assert RunReader(runs["memory"]).meta("dataset")["decoded_cache"] == "memory"
    assert_same_run(runs["memory"], runs["disk"])
    assert reader.epoch_metrics()["val_accuracy"].tolist() == RunReader(runs["memory"]).epoch_metrics()[
        "val_accuracy"].tolist()


@pytest.fixture
def uninterrupted(tiny_rafdb, tmp_path):
    run_dir = tmp_path / "straight"
    train(tiny_config(tiny_rafdb, epochs=3), run_dir=run_dir, progress=False)
    assert len(final_state(run_dir)[1]["history"]) > 0, "the test needs relabels to compare"
    return run_dir


@pytest.mark.slow
def test_stop_mid_epoch_then_resume_matches_uninterrupted(tiny_rafdb, tmp_path, uninterrupted, monkeypatch):
    run_dir = tmp_path / "stopped"
    interrupt_after(monkeypatch, 5, lambda trainer: setattr(trainer.stop, "requested", True))
    assert train(tiny_config(tiny_rafdb, epochs=3), run_dir=run_dir, progress=False) == "stopped"
    assert RunReader(run_dir).status()["state"] == "stopped"
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step_in_epoch"] == 2
    monkeypatch.undo()
    assert train(tiny_config(tiny_rafdb), run_dir=run_dir, resume=True, progress=False) == "finished"
    assert_same_run(uninterrupted, run_dir)
    reader = RunReader(run_dir)
    assert reader.epoch_metrics()["epoch"].tolist() == [1, 2, 3]
    assert reader.step_metrics()["global_step"].is_unique
    # The stopped epoch's hinges before the stop travel in its checkpoint.
    assert reader.epoch_metrics()["rr_active_share"].tolist() == \
        RunReader(uninterrupted).epoch_metrics()["rr_active_share"].tolist()


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs, the last checkpoint is what survives."""


@pytest.mark.slow
def test_killed_mid_epoch_resumes_from_last_epoch_without_duplicates(tiny_rafdb, tmp_path, uninterrupted,
                                                                      monkeypatch):
    run_dir = tmp_path / "killed"

    def kill(trainer):
        raise Killed

    interrupt_after(monkeypatch, 8, kill)
    with pytest.raises(Killed):
        train(tiny_config(tiny_rafdb, epochs=3), run_dir=run_dir, progress=False)
    assert RunReader(run_dir).step_metrics()["epoch"].max() == 3
    monkeypatch.undo()
    train(tiny_config(tiny_rafdb), run_dir=run_dir, resume=True, progress=False)
    assert_same_run(uninterrupted, run_dir)
    reader = RunReader(run_dir)
    steps = reader.step_metrics()
    assert len(steps) == 9 and steps["global_step"].tolist() == list(range(9))
    relabels = reader.relabels()
    assert len(relabels) == len(final_state(run_dir)[1]["history"])


def test_second_trainer_on_same_run_is_refused(tiny_rafdb, tmp_path, capsys):
    run_dir = tmp_path / "locked"
    run_dir.mkdir()
    fd = lock.acquire(run_dir)
    try:
        code = main(["train", "--data", str(tiny_rafdb), "--run-dir", str(run_dir), "--epochs", "1"])
    finally:
        import os

        os.close(fd)
    assert code == 3
    assert "already running" in capsys.readouterr().err


def test_baseline_has_constant_alpha_and_no_relabels(tiny_rafdb, tmp_path):
    run_dir = tmp_path / "baseline"
    train(tiny_config(tiny_rafdb, method="baseline", epochs=1, relabel_epoch=1), run_dir=run_dir,
          progress=False)
    reader = RunReader(run_dir)
    assert np.allclose(reader.attention(1)["alpha"], 1.0)
    assert reader.relabels().empty
    assert reader.config()["method_label"] == "Baseline"
    assert reader.step_metrics()["loss_rr"].eq(0).all()


def test_ablation_switches_are_recorded_and_respected(tiny_rafdb, tmp_path):
    run_dir = tmp_path / "ablation"
    train(tiny_config(tiny_rafdb, epochs=1, relabel_epoch=1, relabel=False, rank_reg=False), run_dir=run_dir,
          progress=False)
    reader = RunReader(run_dir)
    assert reader.relabels().empty and reader.step_metrics()["loss_rr"].eq(0).all()
    assert reader.config()["method_label"] == "SCN w/o rank reg, relabel"
    assert reader.epoch_metrics()[["rr_active_share", "rr_hinge_mean"]].isna().all().all()  # no hinge to count


@pytest.mark.parametrize("margin_1, share", [(1.0, 1.0), (0.0, 0.0)])
def test_the_rank_regularization_hinge_is_counted_per_epoch(tiny_rafdb, tmp_path, margin_1, share):
    """alpha lies in (0, 1), so the groups' mean gap is below 1 and never below 0: margin_1 1
    keeps the hinge above 0 on every step and margin_1 0 on none."""
    run_dir = tmp_path / "rr"
    train(tiny_config(tiny_rafdb, epochs=1, margin_1=margin_1, relabel=False), run_dir=run_dir, progress=False)
    epoch = RunReader(run_dir).epoch_metrics().iloc[0]
    assert epoch["rr_active_share"] == share
    assert epoch["rr_hinge_mean"] == pytest.approx(epoch["train_loss_rr"], rel=0.1, abs=1e-9)
    assert (epoch["rr_hinge_mean"] > 0) == (share > 0)


def test_without_a_validation_split_nothing_is_chosen_on_the_test_split(tiny_rafdb, tmp_path, monkeypatch):
    import scn.train

    checked = []

    def check_epoch(**kwargs):
        checked.append(kwargs)
        return []

    monkeypatch.setattr(scn.train, "check_epoch", check_epoch)
    run_dir = tmp_path / "no-val"
    train(tiny_config(tiny_rafdb, val_fraction=0.0), run_dir=run_dir, progress=False)
    assert not (run_dir / "checkpoints" / "best.pt").exists() and (run_dir / "checkpoints" / "last.pt").exists()
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["best"]["split"] is None
    # The collapse checks read the training predictions of all 48 training images, not the 21 test images.
    assert [c["split"] for c in checked] == ["training", "training"]
    assert [int(c["confusion"].sum()) for c in checked] == [48, 48]
    attention = RunReader(run_dir).attention(2)
    assert np.diag(checked[1]["confusion"]).sum() == (attention["pred"] == attention["label"]).sum()


def test_cli_reports_bad_data_without_traceback(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "nowhere"), "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: dataset folder not found")
    assert RunReader(tmp_path / "r").status()["state"] == "failed"


def test_cli_train_then_eval_and_runs(tiny_rafdb, tmp_path, capsys):
    run_dir = tmp_path / "runs" / "cli"
    assert main(["train", "--data", str(tiny_rafdb), "--run-dir", str(run_dir), "--epochs", "1",
                 "--image-size", "32", "--batch-size", "16", "--no-progress"]) == 0
    assert main(["eval", "--run", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "last (epoch 1): test accuracy" in out and "chosen on the val split" in out
    assert main(["runs", "--root", str(tmp_path / "runs")]) == 0
    assert "cli" in capsys.readouterr().out


def test_without_a_terminal_every_epoch_is_a_line_on_stdout(tiny_rafdb, tmp_path):
    import subprocess
    import sys

    run_dir = tmp_path / "piped"
    result = subprocess.run([sys.executable, "-m", "scn", "train", "--data", str(tiny_rafdb), "--run-dir",
                             str(run_dir), "--epochs", "2", "--image-size", "32", "--batch-size", "16",
                             "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    epochs = [line for line in result.stdout.splitlines() if " epoch " in line and "train acc" in line]
    assert [line.split(" epoch ")[1].split(":")[0] for line in epochs] == ["1/2", "2/2"]
    logged = (run_dir / "train.log").read_text().count("train acc")
    assert logged == 2  # the log file gets each line once


def test_new_run_into_an_existing_run_folder_is_refused(tiny_rafdb, tmp_path, capsys):
    run_dir = tmp_path / "taken"
    args = ["train", "--data", str(tiny_rafdb), "--run-dir", str(run_dir), "--epochs", "1", "--image-size", "32",
            "--no-progress"]
    assert main(args) == 0
    before = RunReader(run_dir).step_metrics()
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert RunReader(run_dir).step_metrics().equals(before)


def test_a_repeated_sigterm_is_counted_not_raised():
    import signal

    from scn.train import StopSignal

    stop = StopSignal()
    stop._handle(signal.SIGTERM, None)
    stop._handle(signal.SIGTERM, None)
    assert stop.requested and stop.repeats == 1
    with pytest.raises(KeyboardInterrupt):
        stop._handle(signal.SIGINT, None)


def test_a_full_disk_fails_the_run_with_the_reason_and_resume_continues(tiny_rafdb, tmp_path, monkeypatch):
    from scn import checkpoint as checkpoint_module
    from scn.checkpoint import CheckpointWriteError

    run_dir = tmp_path / "full"
    real_save = torch.save
    saves = {"n": 0}

    def save(obj, path):
        saves["n"] += 1
        if saves["n"] <= 2:  # epoch 1: last.pt and best.pt are written
            return real_save(obj, path)
        open(path, "wb").write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 58")

    monkeypatch.setattr(checkpoint_module.torch, "save", save)
    with pytest.raises(CheckpointWriteError, match="no space left on device"):
        train(tiny_config(tiny_rafdb), run_dir=run_dir, progress=False)
    status = RunReader(run_dir).status()
    assert status["state"] == "failed" and status["message"].startswith("cannot write")
    assert "no space left on device" in status["message"].splitlines()[0]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    monkeypatch.undo()
    assert train(tiny_config(tiny_rafdb), run_dir=run_dir, resume=True, progress=False) == "finished"
    assert RunReader(run_dir).epoch_metrics()["epoch"].tolist() == [1, 2]


@pytest.mark.parametrize("weights", ["missing", "garbage"])
def test_bad_pretrained_weights_fail_before_a_run_folder_exists(tiny_rafdb, tmp_path, weights):
    from scn.model import PretrainedWeightsError

    path = tmp_path / "start.pt"
    if weights == "garbage":
        path.write_bytes(b"not a weights file")
    run_dir = tmp_path / "runs" / "r"
    with pytest.raises(PretrainedWeightsError):
        train(tiny_config(tiny_rafdb, pretrained=str(path)), run_dir=run_dir, progress=False)
    assert not run_dir.exists()


def test_a_one_class_dataset_trains_with_a_warning_the_app_and_the_cli_show(tmp_path, capsys):
    from tests.helpers import write_rafdb

    data = write_rafdb(tmp_path / "one", train=20, test=6, size=32, num_classes=1)
    run_dir = tmp_path / "r"
    assert train(tiny_config(data, epochs=1), run_dir=run_dir, progress=False) == "finished"
    warnings = RunReader(run_dir).warnings()
    assert warnings[["epoch", "kind"]].values.tolist()[0] == [0, "one_label"]
    assert "every training label is surprise" in warnings["message"].iloc[0]
    assert RunReader(run_dir).meta("warnings") is None  # one channel: the warnings table
    assert "WARNING every training label is surprise" in (run_dir / "train.log").read_text()
    assert main(["runs", "--root", str(tmp_path)]) == 0
    assert "r: warning: Every training label is one class (before training): every training label is surprise" \
        in capsys.readouterr().out
    assert main(["eval", "--run", str(run_dir), "--checkpoint", "last"]) == 0
    assert "warning from the trainer: Every training label is one class" in capsys.readouterr().err


def test_alpha_warmup_trains_plain_cross_entropy_first(tiny_rafdb, tmp_path):
    from scn.model import SCN

    run_dir = tmp_path / "warmup"
    config = tiny_config(tiny_rafdb, epochs=1, relabel_epoch=1, alpha_warmup_epochs=1, alpha_bias_init=3.0)
    train(config, run_dir=run_dir, progress=False)
    reader = RunReader(run_dir)
    assert reader.step_metrics()["loss_rr"].eq(0).all()  # no rank regularization while alpha is 1
    assert reader.relabels().empty  # nor relabeling: the head's groups mean nothing yet
    assert "alpha_collapsed" not in set(reader.warnings()["kind"])  # not reported for a head that is off
    # The head is not trained during the warm-up: it is still the one the trainer built.
    torch.manual_seed(config.seed)
    fresh = SCN(7, alpha_bias=3.0).alpha[0]
    model = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    assert torch.equal(model["alpha.0.weight"], fresh.weight) and torch.all(model["alpha.0.bias"] == 3.0)
    assert reader.config()["alpha_warmup_epochs"] == 1


def test_relabeling_waits_for_the_validation_accuracy_gate(tiny_rafdb, tmp_path):
    run_dir = tmp_path / "gated"
    train(tiny_config(tiny_rafdb, relabel_epoch=1, relabel_min_val_accuracy=1.0), run_dir=run_dir, progress=False)
    assert RunReader(run_dir).relabels().empty
    assert "relabeling in epoch 2: held back (validation accuracy" in (run_dir / "train.log").read_text()


def test_the_first_run_from_synth_face_builds_the_backbone(tiny_rafdb, tmp_path, monkeypatch):
    from scn import pretrain

    monkeypatch.setenv("SCN_STUDIO_CACHE", str(tmp_path / "empty-cache"))
    real_build = pretrain.build_backbone
    monkeypatch.setattr(pretrain, "build_backbone", lambda **kw: real_build(
        **kw | {"people": 3, "images_per_person": 3, "image_size": 32, "epochs": 1}))
    assert not pretrain.backbone_path().exists()
    run_dir = tmp_path / "first"
    assert train(tiny_config(tiny_rafdb, epochs=1, pretrained="synth-face"), run_dir=run_dir,
                 progress=False) == "finished"
    assert pretrain.backbone_path().is_file()
    log = (run_dir / "train.log").read_text()
    assert "building the synth-face backbone once" in log and "pretrained weights: synth-face backbone" in log


def test_stored_test_probabilities_are_the_classifiers_before_alpha_scales_them():
    """The Sample page's probabilities and the Predict page's are one quantity: softmax(fc(x))."""
    from scn.augment import normalize
    from scn.data import Split
    from scn.device import resolve_precision
    from scn.model import SCN
    from scn.train import evaluate

    torch.manual_seed(0)
    model = SCN(7, method="scn", alpha_bias=-2.0)  # alpha near 0.12: scaled and unscaled softmax differ
    images = torch.randint(0, 255, (6, 3, 32, 32), dtype=torch.uint8)
    split = Split(names=[f"s{i}" for i in range(6)], labels=torch.arange(6) % 7, images=images)
    config = make_config(image_size=32, channels_last=False, pretrained="none")
    result = evaluate(model, split, config=config, device=torch.device("cpu"),
                      precision=resolve_precision("fp32", torch.device("cpu")))
    model.eval()
    with torch.no_grad():
        alpha, logits = model.heads(normalize(images, mean=config.mean, std=config.std))
    assert torch.allclose(result["probs"], torch.softmax(logits, dim=1), atol=1e-5)
    assert not torch.allclose(result["probs"], torch.softmax(alpha * logits, dim=1), atol=1e-3)
    assert torch.equal(result["pred"], logits.argmax(1))


def run_records(run_dir):
    reader = RunReader(run_dir)
    return (reader.status()["state"], len(reader.relabels()), len(reader.step_metrics()),
            (run_dir / "config.json").read_text())


@pytest.mark.slow
def test_a_refused_resume_leaves_the_run_as_it_was(tiny_rafdb, tmp_path, capsys):
    from scn.checkpoint import CheckpointError, save_checkpoint
    from scn.data import RAFDB_LABEL_FILE

    run_dir = tmp_path / "done"
    train(tiny_config(tiny_rafdb), run_dir=run_dir, progress=False)
    before = run_records(run_dir)
    assert before[0] == "finished" and before[1] > 0
    label_file = tiny_rafdb / RAFDB_LABEL_FILE
    original = label_file.read_text()
    # Every training image of class 1 now says class 2, whichever of them validation holds.
    label_file.write_text("".join(line.replace(".jpg 1\n", ".jpg 2\n") if line.startswith("train_") else line
                                  for line in original.splitlines(keepends=True)))
    assert main(["train", "--run-dir", str(run_dir), "--resume", "--epochs", "3", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: cannot resume: the dataset differs") and "training labels differ" in captured.err
    assert "Traceback" not in captured.out + captured.err
    assert "Traceback" in (run_dir / "train.log").read_text()
    assert run_records(run_dir) == before

    label_file.write_text(original)
    last = run_dir / "checkpoints" / "last.pt"
    checkpoint = load_checkpoint(last)
    checkpoint["model"]["fc.weight"] = torch.zeros(8, 512)
    checkpoint["model"]["fc.bias"] = torch.zeros(8)
    save_checkpoint(last, checkpoint)
    with pytest.raises(CheckpointError, match="holds a model of another architecture"):
        train(tiny_config(tiny_rafdb), run_dir=run_dir, resume=True, resume_changes={"epochs": 3}, progress=False)
    assert run_records(run_dir) == before


def test_a_full_disk_prints_one_error_line_and_no_traceback(tiny_rafdb, tmp_path, monkeypatch, capsys):
    import errno
    import logging

    from scn import checkpoint as checkpoint_module

    def full(obj, path):
        open(path, "wb").write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    run_dir = tmp_path / "full"
    monkeypatch.setattr(checkpoint_module.torch, "save", full)
    args = ["train", "--data", str(tiny_rafdb), "--run-dir", str(run_dir), "--epochs", "1", "--image-size", "32",
            "--batch-size", "16", "--no-progress"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"error: cannot write {run_dir / 'checkpoints' / 'last.pt'}: "
                                         "no space left on device"]
    assert "Traceback" not in captured.out and "Traceback" in (run_dir / "train.log").read_text()
    assert list((run_dir / "checkpoints").iterdir()) == []
    # A log file the full disk refuses drops the line instead of printing a logging traceback.
    log = logging.getLogger(f"scn.train.{run_dir.resolve()}")
    handler = next(h for h in log.handlers if isinstance(h, logging.FileHandler))
    monkeypatch.setattr(handler, "emit", lambda record: handler.handleError(record))
    log.info("a line the disk has no room for")
    assert "Logging error" not in capsys.readouterr().err


@pytest.mark.parametrize("fault", ["label file", "noise file"])
def test_a_data_error_is_one_line_and_the_folder_can_be_trained_once_the_data_is_fixed(
        tiny_rafdb, tmp_path, capsys, fault):
    from scn.data import RAFDB_LABEL_FILE

    label_file = tiny_rafdb / RAFDB_LABEL_FILE
    original = label_file.read_text()
    noise = tmp_path / "noise.txt"
    noise.write_text("train_00001.jpg 3\n")
    if fault == "label file":
        label_file.write_text(original + "train_09999.jpg\n")
    else:
        noise.write_text("train_00001.jpg three\n")
    run_dir = tmp_path / "r"
    args = ["train", "--data", str(tiny_rafdb), "--run-dir", str(run_dir), "--epochs", "1", "--image-size", "32",
            "--batch-size", "16", "--no-progress", "--noise-file", str(noise)]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert len(captured.err.splitlines()) == 1 and captured.err.startswith("error: ")
    assert "expected 'NAME LABEL'" in captured.err
    assert "Traceback" not in captured.out and "Traceback" in (run_dir / "train.log").read_text()
    assert RunReader(run_dir).status()["state"] == "failed"

    label_file.write_text(original)
    noise.write_text("train_00001.jpg 3\n")
    assert main(args) == 0
    assert RunReader(run_dir).status()["state"] == "finished"
    assert RunReader(run_dir).epoch_metrics()["epoch"].tolist() == [1]


@pytest.mark.slow
def test_a_reviewed_label_is_never_relabeled_again(tiny_rafdb, tmp_path):
    run_dir = tmp_path / "reviewed"
    # No margin: every sample the model disagrees with is relabeled, again and again.
    config = tiny_config(tiny_rafdb, margin_2=0.0, relabel_epoch=1)
    train(config, run_dir=run_dir, progress=False)
    reader = RunReader(run_dir)
    relabeled = sorted(set(reader.relabels(kind="scn")["idx"]))
    assert len(relabeled) >= 3
    original = reader.original_labels()
    reverted, accepted = relabeled[:-1], relabeled[-1]
    AppWriter(reader.run_dir).write_image_reviews(labels={i: int(original[i]) for i in reverted}, decision="revert")
    accepted_event = reader.relabels(kind="scn").query("idx == @accepted").iloc[-1]
    AppWriter(reader.run_dir).write_review(event_id=int(accepted_event["id"]), decision="accept")
    train(config, run_dir=run_dir, resume=True, resume_changes={"epochs": 3, "reviewed_labels": True},
          progress=False)
    # And on a later resume that does not ask for the reviewed labels again.
    train(config, run_dir=run_dir, resume=True, resume_changes={"epochs": 4}, progress=False)
    later = reader.relabels(kind="scn").query("epoch > 2")
    assert len(later) > 0  # the rule still relabels the others
    assert not set(later["idx"]) & set(relabeled)
    labels = load_checkpoint(run_dir / "checkpoints" / "last.pt")["labels"]["current"]
    assert [int(labels[i]) for i in reverted] == [int(original[i]) for i in reverted]
    assert int(labels[accepted]) == int(accepted_event["new"])


def test_a_second_ctrl_c_during_the_checkpoint_waits_for_it_and_marks_the_run_stopped(
        tiny_rafdb, tmp_path, monkeypatch, capsys):
    import signal

    from scn import train as train_module

    real_save = train_module.save_checkpoint
    handler = {}

    def save_interrupted(path, checkpoint):
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # the second Ctrl-C, mid-save
        handler["saving"] = True
        real_save(path, checkpoint)

    interrupt_after(monkeypatch, 2, lambda trainer: trainer.stop._handle(signal.SIGINT, None))
    monkeypatch.setattr(train_module, "save_checkpoint", save_interrupted)
    run_dir = tmp_path / "ctrl-c"
    previous = signal.getsignal(signal.SIGINT)
    try:
        code = main(["train", "--data", str(tiny_rafdb), "--run-dir", str(run_dir), "--epochs", "2",
                     "--image-size", "32", "--batch-size", "16", "--no-progress"])
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    captured = capsys.readouterr()
    assert handler["saving"] and code == 130
    assert captured.err.splitlines() == [f"stopped: {run_dir} (interrupted; --resume continues from its "
                                         "last checkpoint)"]
    assert "Traceback" not in captured.out
    assert RunReader(run_dir).status()["state"] == "stopped"
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["last.pt"]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step_in_epoch"] == 2


def test_an_interrupted_save_leaves_no_temporary_file_and_the_old_checkpoint(tmp_path, monkeypatch):
    from scn import checkpoint as checkpoint_module
    from scn.checkpoint import save_checkpoint

    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})

    def interrupted(obj, target):
        open(target, "wb").write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"epoch": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 1


def test_a_second_ctrl_c_outside_a_save_is_still_a_hard_interrupt():
    import signal

    from scn.train import StopSignal

    stop = StopSignal()
    stop._handle(signal.SIGINT, None)
    with pytest.raises(KeyboardInterrupt), stop.deferred():
        stop._handle(signal.SIGINT, None)  # held while saving, raised once the save is done
    stop.interrupted = False
    with pytest.raises(KeyboardInterrupt):
        stop._handle(signal.SIGINT, None)


def test_an_over_long_run_folder_name_is_one_error_line(tiny_rafdb, tmp_path, capsys):
    run_dir = tmp_path / ("r" * 300)
    assert main(["train", "--data", str(tiny_rafdb), "--run-dir", str(run_dir), "--epochs", "1"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: the run folder name {'r' * 24}… is 300 bytes long; file systems allow at most 255 bytes "
        "a folder name: choose a shorter one"]


def test_a_database_the_full_disk_refuses_is_one_error_line(tiny_rafdb, tmp_path, monkeypatch, capsys):
    import sqlite3

    from scn.store import RunWriter

    def full(self, row):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(RunWriter, "log_step", full)
    run_dir = tmp_path / "full-db"
    assert main(["train", "--data", str(tiny_rafdb), "--run-dir", str(run_dir), "--epochs", "1", "--image-size",
                 "32", "--batch-size", "16", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"error: cannot write {run_dir / 'run.db'}: no space left on device"]
    assert "Traceback" not in captured.out
    assert RunReader(run_dir).status()["state"] == "failed"


def test_the_backbone_trains_at_its_share_of_the_rate_and_the_heads_at_lr():
    from scn.model import SCN
    from scn.train import _parameter_groups

    model = SCN(7)
    one = _parameter_groups(model, make_config(lr=1e-3, pretrained="none"))
    assert len(one) == 1 and len(one[0]["params"]) == len(list(model.parameters()))
    backbone, heads = _parameter_groups(model, make_config(lr=1e-3, backbone_lr_scale=0.01, pretrained="none"))
    assert backbone["lr"] == pytest.approx(1e-5) and "lr" not in heads
    assert {id(p) for p in backbone["params"]} == {id(p) for p in model.features.parameters()}
    assert len(backbone["params"]) + len(heads["params"]) == len(list(model.parameters()))


def test_a_finished_run_scores_a_checkpoint_epoch_once_for_the_slices_page(finished_runs, tmp_path, monkeypatch):
    """best saved at the last epoch is the same model as last: its Slices predictions are computed once."""
    import shutil

    from scn import slices
    from scn import train as train_module

    run_dir = shutil.copytree(finished_runs["scn_dir"], tmp_path / "run")
    calls = []

    def predictions(reader, *, which, device):
        calls.append(which)
        n = len(calls)
        return {"train": np.full(len(reader.samples("train")), n), "test": np.full(len(reader.samples("test")), n)}

    monkeypatch.setattr(slices, "run_predictions", predictions)
    epochs = {"best": 3, "last": 3}
    monkeypatch.setattr(train_module, "load_checkpoint", lambda path: {"epoch": epochs[path.stem]})
    train_module._save_slice_predictions(run_dir, device="cpu", log=logging.getLogger("test"))
    reader = RunReader(run_dir)
    assert len(calls) == 1
    assert np.array_equal(slices.saved_predictions(reader, which="best")["test"],
                          slices.saved_predictions(reader, which="last")["test"])

    epochs["best"] = 2
    train_module._save_slice_predictions(run_dir, device="cpu", log=logging.getLogger("test"))
    assert len(calls) == 3
    assert not np.array_equal(slices.saved_predictions(reader, which="best")["test"],
                              slices.saved_predictions(reader, which="last")["test"])
