"""AppTest of pages/6_Predict.py: uploads, camera photo, fallbacks and messages, in one process."""
import json
from pathlib import Path

import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from scn.store import checkpoint_path
from tests.helpers import copy_run, encode, make_unsure

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def page(runs_root, monkeypatch) -> AppTest:
    monkeypatch.setenv("SCN_RUNS_DIR", str(runs_root))
    app = AppTest.from_file(APP, default_timeout=120)
    app.switch_page("pages/6_Predict.py")
    app.run()
    assert not app.exception, app.exception
    return app


def captions(app) -> list:
    return [caption for image in app.get("image") for caption in image.captions]


def test_no_runs_is_a_plain_message(tmp_path, monkeypatch):
    app = page(tmp_path / "nothing here", monkeypatch)
    assert "No runs yet" in app.info[0].value
    assert not app.get("file_uploader")


def without_checkpoints(run, *which):
    for name in which:
        checkpoint_path(run, name).unlink()
    return run


def test_run_without_checkpoint_says_so(run_dir, monkeypatch):
    without_checkpoints(run_dir, "best", "last")
    app = page(run_dir.parent, monkeypatch)
    assert "has no checkpoint yet" in app.warning[0].value


def test_run_still_training_offers_its_last_checkpoint(run_dir, monkeypatch):
    without_checkpoints(run_dir, "best")
    app = page(run_dir.parent, monkeypatch)
    assert app.radio[0].options == ["last"]
    assert "No best checkpoint: the trainer writes it at the end of the first epoch" in \
        "\n".join(c.value for c in app.caption)
    assert app.get("file_uploader")


def test_foreign_checkpoint_is_an_error_not_a_traceback(run_dir, monkeypatch):
    checkpoint_path(run_dir, "best").unlink()  # a hard link to the shared trained run's file
    torch.save({"weights": torch.zeros(1)}, checkpoint_path(run_dir, "best"))
    app = page(run_dir.parent, monkeypatch)
    assert "Cannot use this checkpoint" in app.error[0].value


def test_upload_shows_boxes_probabilities_alpha_and_cam(run_dir, monkeypatch, grace_hopper_path):
    app = page(run_dir.parent, monkeypatch)
    assert "the built-in synthetic benchmark" in app.info[0].value
    assert app.radio[0].options == ["best", "last"]
    app.file_uploader[0].set_value([
        ("hopper.jpg", grace_hopper_path.read_bytes(), "image/jpeg"),
        ("notes.txt", b"not a photo", "text/plain"),
        ("empty.png", b"", "image/png"),
    ]).run()
    assert not app.exception, app.exception
    assert [e.value for e in app.error] == ["notes.txt: not an image file, or a format that cannot be read",
                                            "empty.png: the file is empty"]
    faces = [m.value for m in app.markdown if m.value.startswith("**Face")]
    assert len(faces) == 1 and "(mtcnn), detector probability " in faces[0]
    assert "1 face(s), numbered as listed below" in captions(app)
    assert {"in the photo, with its landmarks", "aligned on its 5 landmarks, as the model sees it"} <= set(captions(app))
    chart = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert len(chart["data"][0]["y"]) == 7 and abs(sum(chart["data"][0]["x"]) - 1.0) < 1e-4
    assert 0.0 <= float(app.metric[0].value) <= 1.0
    assert any("the run's training samples' weights" in c.value or "Lower than every training sample" in c.value
               for c in app.caption)
    # The headline names the top class, or the best guess of a face the model is unsure of.
    top = app.selectbox[1].value
    assert f"{top} (" in faces[0] or f"best guess {top}," in faces[0]
    assert f"Grad-CAM for {top} (last residual block)" in captions(app)

    other = next(name for name in app.selectbox[1].options if name != top)
    app.selectbox[1].set_value(other).run()
    assert not app.exception, app.exception
    assert f"Grad-CAM for {other} (last residual block)" in captions(app)


def test_no_face_offers_whole_image_and_a_hand_drawn_square(run_dir, monkeypatch):
    app = page(run_dir.parent, monkeypatch)
    app.file_uploader[0].set_value(("wall.png", encode(Image.new("RGB", (160, 120), (90, 90, 90))), "image/png"))
    app.run()
    assert app.warning[0].value == "No face found in wall.png."
    assert not [m for m in app.markdown if m.value.startswith("**Face")]

    app.radio(key="fallback-0-wall.png").set_value("the whole image").run()
    assert not app.exception, app.exception
    assert "box x=0 y=0 160x120 px (whole image)" in app.markdown[-1].value

    app.radio(key="fallback-0-wall.png").set_value("a square I choose").run()
    app.number_input(key="side-0-wall.png").set_value(60).run()
    app.number_input(key="x-0-wall.png").set_value(10).run()
    app.number_input(key="y-0-wall.png").set_value(25).run()
    assert not app.exception, app.exception
    assert "box x=10 y=25 60x60 px (manual)" in app.markdown[-1].value


def test_camera_photo(run_dir, monkeypatch, grace_hopper_path):
    app = page(run_dir.parent, monkeypatch)
    app.toggle[0].set_value(True).run()
    app.camera_input[0].set_value(("photo.jpg", grace_hopper_path.read_bytes(), "image/jpeg")).run()
    assert not app.exception, app.exception
    assert [s.value for s in app.subheader] == ["camera photo"]
    assert len([m for m in app.markdown if m.value.startswith("**Face")]) == 1


def test_baseline_run_explains_alpha(tmp_path, trained_runs, monkeypatch, grace_hopper_path):
    copy_run(trained_runs["baseline"], tmp_path / "runs")
    app = page(tmp_path / "runs", monkeypatch)
    app.file_uploader[0].set_value(("hopper.jpg", grace_hopper_path.read_bytes(), "image/jpeg")).run()
    assert any("no attention head" in c.value for c in app.caption)


def test_a_run_with_a_damaged_database_still_predicts(run_dir, monkeypatch):
    import os

    os.truncate(run_dir / "run.db", 4096)
    app = page(run_dir.parent, monkeypatch)
    assert app.selectbox[0].options == ["demo (damaged)"]
    assert "run.db is damaged" in app.warning[0].value
    assert app.get("file_uploader")


def test_an_image_too_small_for_a_face_is_refused_and_later_uploads_still_show(run_dir, monkeypatch):
    app = page(run_dir.parent, monkeypatch)
    app.file_uploader[0].set_value([
        ("tiny.png", encode(Image.new("RGB", (12, 8), (90, 90, 90))), "image/png"),
        ("wall.png", encode(Image.new("RGB", (160, 120), (90, 90, 90))), "image/png"),
    ]).run()
    assert not app.exception, app.exception
    assert [e.value for e in app.error] == ["The image is 12x8 px: too small to hold a face (at least 16 px a side)."]
    assert [r.key for r in app.radio if (r.key or "").startswith("fallback-")] == ["fallback-1-wall.png"]
    app.radio(key="fallback-1-wall.png").set_value("a square I choose").run()
    assert not app.exception, app.exception
    assert "box x=20 y=0 120x120 px (manual)" in app.markdown[-1].value


def test_a_face_with_alpha_near_zero_is_called_unsure(run_dir, monkeypatch, grace_hopper_path):
    make_unsure(run_dir)
    app = page(run_dir.parent, monkeypatch)
    app.file_uploader[0].set_value(("hopper.jpg", grace_hopper_path.read_bytes(), "image/jpeg")).run()
    assert not app.exception, app.exception
    assert float(app.metric[0].value) == 0.0
    assert any("the model is very unsure about this face" in w.value for w in app.warning)
    assert any("Lower than every training sample's weight" in c.value for c in app.caption)
    assert any("softmax of the classifier's logits before alpha scales them" in c.value for c in app.caption)
    assert any("**Face 1**: unsure (alpha 0.000 is near 0; best guess" in m.value for m in app.markdown)
    chart = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert max(chart["data"][0]["x"]) > 1 / 7 + 1e-3


def unfinished_run(root, name: str, *, started: float):
    """A newer run that is not finished (stopped early, no checkpoint): often a tiny test run."""
    from scn.store import RunWriter

    writer = RunWriter(root / name)
    writer.write_config({"method": "scn", "epochs": 2})
    writer.set_status("stopped", started=started)
    writer.close()


def test_the_newest_finished_run_is_the_default(finished_runs, monkeypatch):
    import time

    unfinished_run(finished_runs["root"], "20270101-000000-tiny", started=time.time() + 60)
    app = page(finished_runs["root"], monkeypatch)
    assert app.selectbox[0].options[0] == "20270101-000000-tiny (stopped)"
    assert app.selectbox[0].value == "20260101-120000-scn"
    assert app.query_params["run"] == "20260101-120000-scn"
    monkeypatch.setenv("SCN_RUNS_DIR", str(finished_runs["root"]))
    linked = AppTest.from_file(APP, default_timeout=120)
    linked.switch_page("pages/6_Predict.py")
    linked.query_params["run"] = "20270101-000000-tiny"
    linked.run()
    assert linked.selectbox[0].value == "20270101-000000-tiny"


def test_without_a_finished_run_the_newest_is_the_default(tmp_path, monkeypatch):
    unfinished_run(tmp_path, "20260101-000000-older", started=1.0)
    unfinished_run(tmp_path, "20260102-000000-newer", started=2.0)
    app = page(tmp_path, monkeypatch)
    assert app.selectbox[0].value == "20260102-000000-newer"


def faces_shown(app) -> list:
    return [m.value for m in app.markdown if m.value.startswith("**Face")]


def test_a_wrong_box_is_removed_and_a_missed_face_added(run_dir, monkeypatch, grace_hopper_path):
    app = page(run_dir.parent, monkeypatch)
    app.file_uploader[0].set_value(("hopper.jpg", grace_hopper_path.read_bytes(), "image/jpeg")).run()
    keep = app.multiselect(key="keep-0-hopper.jpg")
    [detected] = keep.value
    assert len(faces_shown(app)) == 1

    keep.set_value([]).run()
    assert not app.exception, app.exception
    assert faces_shown(app) == [] and "0 face(s), numbered as listed below" in captions(app)

    app.number_input(key="side-0-hopper.jpg").set_value(100).run()
    app.number_input(key="x-0-hopper.jpg").set_value(20).run()
    app.number_input(key="y-0-hopper.jpg").set_value(30).run()
    app.button(key="add-0-hopper.jpg").click().run()
    assert not app.exception, app.exception
    shown = faces_shown(app)
    assert len(shown) == 1 and "box x=20 y=30 100x100 px (manual)" in shown[0]

    app.multiselect(key="keep-0-hopper.jpg").select(detected).run()
    shown = faces_shown(app)
    assert [s.split("box ")[1].split(",")[0] for s in shown] == [
        "x=20 y=30 100x100 px (manual)", f"x={detected.x} y={detected.y} {detected.w}x{detected.h} px (mtcnn)"]
    assert captions(app).count("aligned on its 5 landmarks, as the model sees it") == 1
    assert len(app.get("plotly_chart")) == 2
    assert "2 face(s), numbered as listed below" in captions(app)
    assert sum(c.startswith("Grad-CAM for ") for c in captions(app)) == 2


def test_the_haar_detector_is_there_to_compare_and_crops_square(run_dir, monkeypatch, grace_hopper_path):
    app = page(run_dir.parent, monkeypatch)
    assert app.radio(key="detector").value == "mtcnn"
    app.radio(key="detector").set_value("haar").run()
    app.file_uploader[0].set_value(("hopper.jpg", grace_hopper_path.read_bytes(), "image/jpeg")).run()
    assert not app.exception, app.exception
    [face] = faces_shown(app)
    assert "(frontal)" in face and "detector probability" not in face
    assert {"in the photo", "square face crop, as the model sees it"} <= set(captions(app))


def test_a_missing_mtcnn_package_is_a_message_not_a_traceback(run_dir, monkeypatch, grace_hopper_path):
    from scn import faces

    def missing(min_face_size):
        raise faces.DetectorUnavailableError("the MTCNN face detector needs facenet-pytorch")

    monkeypatch.setattr(faces, "_mtcnn", missing)
    app = page(run_dir.parent, monkeypatch)
    # Bytes no other test uploads: analyse's cache must not answer for the detector.
    app.file_uploader[0].set_value(("hopper.png", encode(Image.open(grace_hopper_path)), "image/png")).run()
    assert not app.exception, app.exception
    assert [e.value for e in app.error] == ["the MTCNN face detector needs facenet-pytorch"]
