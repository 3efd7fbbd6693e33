import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from scn.align import align_face
from scn.cli import main
from scn.faces import Box, crop
from scn.predict import (FacePrediction, alpha_percentile, load_model_cached, predict_image, preprocess, trained_on,
                         training_alphas)
from scn.store import RunReader, RunWriter, checkpoint_path
from scn.synth import SynthConfig
from scn.synth.sample import draw_sample, render, sample_rng
from tests.helpers import copy_run, make_unsure


@pytest.fixture
def model_meta(run_dir):
    return load_model_cached(checkpoint_path(run_dir, "best"))


def direct_forward(model, meta, image, box):
    """What the model says on the box's face (aligned on its landmarks, or cropped), computed
    without scn.predict's batching and CAM."""
    config = meta["model_config"]
    side = config["image_size"]
    face = (align_face(image, box.landmarks, size=side) if box.landmarks
            else crop(image, box).resize((side, side), Image.Resampling.BILINEAR))
    pixels = np.asarray(face, np.float32)
    x = (torch.from_numpy(pixels).permute(2, 0, 1)[None] / 255 - torch.tensor(config["mean"]).view(1, 3, 1, 1)) \
        / torch.tensor(config["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        alpha, logits = model.heads(x)  # probabilities before alpha scales the logits
    return float(alpha), torch.softmax(logits, 1)[0].numpy()


def test_face_in_a_real_photo_matches_a_direct_forward_pass(model_meta, grace_hopper):
    model, meta = model_meta
    faces = predict_image(model, meta, grace_hopper)
    assert len(faces) == 1
    face = faces[0]
    alpha, probs = direct_forward(model, meta, grace_hopper, face.box)
    side = meta["model_config"]["image_size"]
    assert face.alpha == pytest.approx(alpha, abs=1e-5)
    assert np.allclose(face.probs, probs, atol=1e-5)
    assert face.top_class == meta["model_config"]["class_names"][int(probs.argmax())] == face.cam_class
    assert face.probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert face.box.source == "mtcnn" and len(face.box.landmarks) == 5
    assert face.crop.size == (side, side)
    assert np.array_equal(np.asarray(face.crop), np.asarray(align_face(grace_hopper, face.box.landmarks, size=side)))
    assert face.cam.shape == (side, side)
    assert 0.0 <= face.cam.min() and face.cam.max() <= 1.0
    assert face.overlay.shape == (side, side, 3)
    assert face.probabilities()[face.top_class] == pytest.approx(face.confidence)


def test_whole_image_and_manual_box(model_meta, grace_hopper):
    model, meta = model_meta
    whole = predict_image(model, meta, grace_hopper, whole_image=True)
    assert [f.box.as_tuple() for f in whole] == [(0, 0, 512, 600)]
    assert whole[0].alpha == pytest.approx(direct_forward(model, meta, grace_hopper, whole[0].box)[0], abs=1e-5)
    manual = predict_image(model, meta, grace_hopper, boxes=[(100, 50, 300, 300)])
    assert manual[0].box == Box(100, 50, 300, 300, "manual")
    assert np.allclose(manual[0].probs, direct_forward(model, meta, grace_hopper, manual[0].box)[1], atol=1e-5)


def test_edited_boxes_are_predicted_in_their_order(model_meta, grace_hopper):
    model, meta = model_meta
    detected = predict_image(model, meta, grace_hopper)[0].box
    faces = predict_image(model, meta, grace_hopper, boxes=[(10, 10, 80, 80), detected])
    assert [f.box for f in faces] == [Box(10, 10, 80, 80, "manual"), detected]
    assert np.allclose(faces[1].probs, predict_image(model, meta, grace_hopper)[0].probs, atol=1e-5)
    assert predict_image(model, meta, grace_hopper, boxes=[]) == []
    with pytest.raises(ValueError, match="lies outside the 512x600 image"):
        predict_image(model, meta, grace_hopper, boxes=[(600, 0, 50, 50)])


def test_faces_of_the_built_in_benchmark(model_meta):
    """Images as the synthetic generator renders them, tightly framed like RAF-DB's aligned faces."""
    model, meta = model_meta
    for index, true_class in enumerate(("happiness", "surprise")):
        pixels, _ = render(draw_sample(sample_rng(seed=0, split="test", index=index), true_class,
                                       config=SynthConfig()), size=100)
        image = Image.fromarray(pixels)
        face = predict_image(model, meta, image, whole_image=True)[0]
        alpha, probs = direct_forward(model, meta, image, face.box)
        assert face.box.as_tuple() == (0, 0, 100, 100)
        assert face.alpha == pytest.approx(alpha, abs=1e-5) and np.allclose(face.probs, probs, atol=1e-5)


def test_no_face_gives_an_empty_list(model_meta):
    model, meta = model_meta
    assert predict_image(model, meta, Image.new("RGB", (200, 200), (90, 90, 90))) == []


def test_cam_class_by_name_or_index(model_meta, grace_hopper):
    model, meta = model_meta
    by_name = predict_image(model, meta, grace_hopper, boxes=[(100, 50, 300, 300)], cam_class="fear")[0]
    by_index = predict_image(model, meta, grace_hopper, boxes=[(100, 50, 300, 300)], cam_class=1)[0]
    assert by_name.cam_class == by_index.cam_class == "fear"
    assert np.allclose(by_name.cam, by_index.cam, atol=1e-5)
    with pytest.raises(ValueError, match="unknown class 'joy'"):
        predict_image(model, meta, grace_hopper, cam_class="joy")
    with pytest.raises(ValueError, match="out of range"):
        predict_image(model, meta, grace_hopper, cam_class=7)


def test_preprocess_resizes_scales_and_normalises():
    config = {"image_size": 8, "mean": [0.5, 0.25, 0.0], "std": [0.5, 0.25, 1.0]}
    batch = preprocess([Image.new("RGB", (30, 20), (255, 51, 0))], config)
    assert batch.shape == (1, 3, 8, 8)
    assert torch.allclose(batch[0, :, 0, 0], torch.tensor([1.0, -0.2, 0.0]), atol=1e-6)


def test_alpha_percentile():
    training = [0.1, 0.2, 0.3, 0.4, np.nan]
    assert alpha_percentile(0.05, training) == 0.0
    assert alpha_percentile(0.3, training) == 75.0
    assert alpha_percentile(0.9, training) == 100.0
    assert alpha_percentile(0.5, []) is None


def test_training_alphas_and_dataset_come_from_the_run(run_dir, model_meta):
    reader = RunReader(run_dir)
    latest = reader.attention(max(reader.attention_epochs()))["alpha"].to_numpy()
    assert len(latest) == len(reader.samples("train")) and np.allclose(training_alphas(run_dir), latest)
    writer = RunWriter(run_dir)
    writer.discard_from(epoch=1, step=0)  # as a resumed run does: back to before its first epoch
    writer.close()
    assert training_alphas(run_dir).size == 0
    assert trained_on(model_meta[1]).startswith("the built-in synthetic benchmark (80 train / 21 test")
    assert trained_on({}) == "an unrecorded dataset"


def test_model_is_cached_until_the_checkpoint_changes(run_dir):
    path = checkpoint_path(run_dir, "best")
    first = load_model_cached(path)
    assert load_model_cached(str(path)) is first
    stat = path.stat()
    # The copy's checkpoint is a hard link to the session's trained run (tests/helpers.copy_run):
    # a file of its own first, so that only this copy's time changes.
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert load_model_cached(path) is not first


def test_baseline_model_has_alpha_one(trained_runs, grace_hopper):
    model, meta = load_model_cached(checkpoint_path(trained_runs["baseline"], "last"))
    assert predict_image(model, meta, grace_hopper, whole_image=True)[0].alpha == 1.0


def test_cli_prints_faces_and_writes_cams(run_dir, model_meta, grace_hopper_path, tmp_path, capsys):
    cams = tmp_path / "cams"
    assert main(["predict", "--run", str(run_dir), str(grace_hopper_path), "--cam-dir", str(cams)]) == 0
    out = capsys.readouterr().out
    assert "grace_hopper.jpg: 1 face" in out and "alpha" in out and "percentile" in out
    assert "the built-in synthetic benchmark" in out
    written = sorted(cams.iterdir())
    assert len(written) == 1 and written[0].name.startswith("grace_hopper-face1-")
    side = model_meta[1]["model_config"]["image_size"]
    assert Image.open(written[0]).size == (side, side)


def test_cli_json_reports_a_bad_image_and_predicts_the_others(run_dir, grace_hopper_path, tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    status = main(["predict", "--run", str(run_dir), "--checkpoint", "last", "--json", str(bad),
                   str(grace_hopper_path)])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.startswith(f"error: {bad}: not an image")
    report = json.loads(captured.out)
    assert report["checkpoint"].endswith("last.pt") and report["trained_on"].startswith("the built-in")
    assert "error" in report["images"][0]
    face = report["images"][1]["faces"][0]
    assert set(face["box"]) == {"x", "y", "w", "h"} and len(face["probabilities"]) == 7
    assert face["detector"] == "mtcnn" and face["aligned"] and face["detector_probability"] > 0.95
    assert len(face["landmarks"]) == 5 and all(len(point) == 2 for point in face["landmarks"])
    assert 0.0 <= face["alpha"] <= 1.0 and 0.0 <= face["alpha_percentile"] <= 100.0


def test_cli_whole_image_option(run_dir, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (120, 90), (80, 80, 80)).save(blank)
    assert main(["predict", "--run", str(run_dir), str(blank)]) == 0
    assert "no face found" in capsys.readouterr().out
    assert main(["predict", "--run", str(run_dir), "--whole-image", "--json", str(blank)]) == 0
    face = json.loads(capsys.readouterr().out)["images"][0]["faces"][0]
    assert face["box"] == {"x": 0, "y": 0, "w": 120, "h": 90} and face["detector"] == "whole image"


def without_validation(run_dir):
    """The run as one trained with --val-fraction 0 leaves it: no best checkpoint."""
    checkpoint_path(run_dir, "best").unlink()
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps(config | {"val_fraction": 0.0}))
    return run_dir


def test_cli_uses_the_last_checkpoint_of_a_run_without_validation_and_says_so(run_dir, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (120, 90), (80, 80, 80)).save(blank)
    without_validation(run_dir)
    assert main(["predict", "--run", str(run_dir), "--whole-image", "--json", str(blank)]) == 0
    captured = capsys.readouterr()
    assert "no best checkpoint (it trains without a validation split" in captured.err
    assert "using its last checkpoint" in captured.err
    assert json.loads(captured.out)["checkpoint"] == str(checkpoint_path(run_dir, "last"))
    assert main(["predict", "--run", str(run_dir), "--checkpoint", "best", str(blank)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--val-fraction 0" in err


def test_cli_haar_detector_crops_square_without_landmarks(run_dir, grace_hopper_path, capsys):
    assert main(["predict", "--run", str(run_dir), "--detector", "haar", "--json", str(grace_hopper_path)]) == 0
    face = json.loads(capsys.readouterr().out)["images"][0]["faces"][0]
    assert face["detector"] == "frontal" and not face["aligned"]
    assert face["landmarks"] is None and face["detector_probability"] is None
    assert face["box"]["w"] == face["box"]["h"]


@pytest.mark.parametrize("setup, message", [
    ("missing run", "no run folder at"),
    ("no checkpoint", "has no best checkpoint ("),
    ("foreign checkpoint", "is not an SCN Studio checkpoint"),
])
def test_cli_bad_run_is_an_error_without_traceback(tmp_path, trained_runs, grace_hopper_path, capsys, setup,
                                                   message):
    run = tmp_path / "runs" / "r"
    if setup != "missing run":
        copy_run(trained_runs["scn"], tmp_path / "runs", name="r")
        for which in ("best", "last"):
            checkpoint_path(run, which).unlink()
    if setup == "foreign checkpoint":
        torch.save({"weights": torch.zeros(2)}, checkpoint_path(run, "best"))
    assert main(["predict", "--run", str(run), str(grace_hopper_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_cli_predicts_from_the_checkpoint_of_a_run_whose_database_is_damaged(run_dir, grace_hopper_path,
                                                                               capsys):
    import os

    os.truncate(run_dir / "run.db", 4096)
    assert main(["predict", "--run", str(run_dir), "--json", str(grace_hopper_path)]) == 0
    captured = capsys.readouterr()
    assert "run.db is damaged" in captured.err and "checkpoint alone" in captured.err
    face = json.loads(captured.out)["images"][0]["faces"][0]
    assert face["alpha_percentile"] is None


def test_a_face_with_alpha_near_zero_keeps_its_probabilities_and_cam(run_dir, grace_hopper):
    model, meta = load_model_cached(checkpoint_path(make_unsure(run_dir), "best"))
    face = predict_image(model, meta, grace_hopper)[0]
    assert face.alpha < 1e-6
    assert face.probs.max() - face.probs.min() > 1e-3  # not the uniform 1/7 of the scaled logits
    assert np.allclose(face.probs, direct_forward(model, meta, grace_hopper, face.box)[1], atol=1e-5)
    assert face.cam.max() > 0.5  # a map, not a blank


@pytest.mark.parametrize("alpha, cam_peak, reason", [(0.9, 1.0, None), (0.01, 1.0, "alpha 0.010 is near 0"),
                                                     (0.9, 0.0, "its Grad-CAM is flat")])
def test_a_face_is_unsure_with_alpha_near_0_or_a_flat_cam(alpha, cam_peak, reason):
    cam = np.zeros((8, 8), np.float32)
    cam[2, 2] = cam_peak
    face = FacePrediction(box=Box(0, 0, 8, 8, "manual"), crop=Image.new("RGB", (8, 8)),
                          probs=np.array([0.01, 0.99]), class_names=("happiness", "sadness"), top_class="sadness",
                          alpha=alpha, cam_class="sadness", cam=cam, overlay=np.zeros((8, 8, 3), np.uint8))
    assert face.unsure is None if reason is None else face.unsure.startswith(reason)


def test_cli_calls_a_face_with_alpha_near_zero_unsure(run_dir, grace_hopper_path, capsys):
    make_unsure(run_dir)
    assert main(["predict", "--run", str(run_dir), str(grace_hopper_path)]) == 0
    assert "unsure (alpha 0.000 is near 0; best guess" in capsys.readouterr().out
    assert main(["predict", "--run", str(run_dir), "--json", str(grace_hopper_path)]) == 0
    assert json.loads(capsys.readouterr().out)["images"][0]["faces"][0]["unsure"] == "alpha 0.000 is near 0"
