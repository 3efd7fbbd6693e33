import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from scn.align import TEMPLATE, align_face, similarity
from scn.classes import CLASS_NAMES
from scn.cli import main
from scn.synth import SynthConfig
from scn.synth.sample import draw_sample, render, sample_rng


def moved(points, *, degrees: float, scale: float, shift) -> np.ndarray:
    """`points` rotated by `degrees` about the origin, scaled, then shifted: a face tilted in a photo."""
    angle = np.radians(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.asarray(points) @ rotation.T * scale + np.asarray(shift)


def generated_landmarks(pixels: dict) -> np.ndarray:
    """The five template points of a generated face: eye centres, nose tip, mouth corners."""
    return np.vstack([pixels["eyes"], pixels["nose"], pixels["outline"][[12, 13]]])


def test_the_transform_takes_landmarks_exactly_onto_the_template():
    landmarks = moved(TEMPLATE * 100, degrees=-25, scale=2.7, shift=(310, 140))
    matrix = similarity(landmarks, size=112)
    mapped = np.c_[landmarks, np.ones(5)] @ matrix.T
    assert np.allclose(mapped, TEMPLATE * 112, atol=1e-6)
    assert np.hypot(*matrix[:, 0]) == pytest.approx(112 / 270)  # uniform scale, no shear


def test_an_aligned_face_has_its_landmarks_where_the_template_puts_them():
    """Dots drawn at a tilted face's landmarks land within a pixel of the template in the crop."""
    landmarks = moved(TEMPLATE * 100 - 50, degrees=30, scale=3.0, shift=(260, 210))
    photo = Image.new("RGB", (520, 400))
    draw = ImageDraw.Draw(photo)
    for x, y in landmarks:
        draw.ellipse((x - 6, y - 6, x + 6, y + 6), fill=(255, 255, 255))
    aligned = np.asarray(align_face(photo, landmarks, size=100).convert("L"), dtype=float)
    assert aligned.shape == (100, 100)
    ys, xs = np.mgrid[:100, :100]
    for x, y in TEMPLATE * 100:
        near = aligned * ((xs - x) ** 2 + (ys - y) ** 2 < 6 ** 2)
        centre = (np.sum(near * xs) / near.sum(), np.sum(near * ys) / near.sum())
        assert np.hypot(centre[0] - x, centre[1] - y) < 1.0


def test_the_template_is_where_the_generator_draws_the_face_on_average():
    points = np.array([
        generated_landmarks(render(draw_sample(sample_rng(seed=0, split="train", index=i), CLASS_NAMES[i % 7],
                                               config=SynthConfig()), size=64)[1]) / 64
        for i in range(280)])
    mean = points.mean(axis=0)
    mirrored = np.c_[1 - mean[:, 0], mean[:, 1]][[1, 0, 2, 4, 3]]
    assert np.allclose((mean + mirrored) / 2, TEMPLATE, atol=2e-3)


@pytest.mark.parametrize("landmarks, message", [
    (np.zeros((4, 2)), "must be 5 finite"),
    (np.full((5, 2), np.nan), "must be 5 finite"),
    (np.ones((5, 2)), "the landmarks coincide"),
])
def test_bad_landmarks_are_refused(landmarks, message):
    with pytest.raises(ValueError, match=message):
        align_face(Image.new("RGB", (50, 50)), landmarks, size=32)


def test_size_must_be_positive():
    with pytest.raises(ValueError, match="size must be a positive number of pixels, not 0"):
        align_face(Image.new("RGB", (50, 50)), TEMPLATE * 50, size=0)


def generated_photo(index: int) -> Image.Image:
    """A built-in benchmark face on a larger plain background, as a photo with one person."""
    pixels, _ = render(draw_sample(sample_rng(seed=1, split="test", index=index), "happiness",
                                   config=SynthConfig()), size=120)
    photo = Image.new("RGB", (260, 200), (70, 90, 110))
    photo.paste(Image.fromarray(pixels), (100, 40))
    return photo


def test_align_command_writes_faces_keeps_class_folders_and_reports_the_rest(tmp_path, capsys):
    raw, out = tmp_path / "raw", tmp_path / "aligned"
    (raw / "happy").mkdir(parents=True)
    (raw / "sad").mkdir()
    generated_photo(0).save(raw / "happy" / "p1.jpg", quality=95)
    generated_photo(1).save(raw / "sad" / "p2.png")
    generated_photo(2).save(raw / "sad" / "p2.jpg")  # its crop would be sad/p2_face1.png too
    Image.new("RGB", (160, 120), (90, 90, 90)).save(raw / "sad" / "wall.png")
    (raw / "happy" / "notes.txt").write_text("not a photo")

    assert main(["align", "--input", str(raw), "--output", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["happy/p1_face1.png", "sad/p2_face1.png"]
    assert Image.open(out / "happy" / "p1_face1.png").size == (100, 100)
    report = pd.read_csv(out / "align_report.csv").set_index("file")
    assert report["status"].to_dict() == {"happy/notes.txt": "unreadable", "happy/p1.jpg": "aligned",
                                          "sad/p2.jpg": "aligned", "sad/p2.png": "name taken",
                                          "sad/wall.png": "no face"}
    assert report.loc["happy/p1.jpg", "written"] == 1
    assert "unreadable: happy/notes.txt: not an image file" in printed
    assert "no face: sad/wall.png" in printed
    assert "name taken: sad/p2.png: another photo in this folder has the same name" in printed
    assert "2 faces from 2 photos written to" in printed

    assert main(["align", "--input", str(raw), "--output", str(out), "--no-progress"]) == 2
    assert "already holds 3 files; choose an empty folder or overwrite" in capsys.readouterr().err
    assert main(["align", "--input", str(raw), "--output", str(out), "--largest", "--size", "64",
                 "--overwrite", "--no-progress"]) == 0
    assert Image.open(out / "happy" / "p1.png").size == (64, 64)


def test_align_command_refuses_a_missing_input_and_an_output_inside_it(tmp_path, capsys):
    assert main(["align", "--input", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")]) == 2
    assert "no folder of photos at" in capsys.readouterr().err
    assert main(["align", "--input", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    assert "lies inside the input folder" in capsys.readouterr().err
