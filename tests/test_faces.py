import sys

import numpy as np
import pytest
from PIL import Image

from scn import faces
from scn.faces import Box, DetectorUnavailableError, crop, detect_faces, draw_boxes, same_face, shrink, square_box, zoom
from scn.synth import SynthConfig
from scn.synth.sample import draw_sample, render, sample_rng

# Grace Hopper's face in matplotlib's grace_hopper.jpg (512x600): between the eyes, above the mouth.
FACE_CENTRE = (265, 215)


def contains(box: Box, point) -> bool:
    return box.x <= point[0] < box.x + box.w and box.y <= point[1] < box.y + box.h


@pytest.fixture(scope="module")
def hopper_mtcnn(grace_hopper) -> Box:
    [box] = detect_faces(grace_hopper)
    return box


def test_mtcnn_finds_the_one_face_in_a_real_photo_with_its_landmarks(hopper_mtcnn):
    box = hopper_mtcnn
    assert box.source == "mtcnn" and box.score > 0.99
    assert contains(box, FACE_CENTRE) and 150 < box.w < 300
    (left_eye, right_eye, nose, left_mouth, right_mouth) = box.landmarks
    assert left_eye[0] < nose[0] < right_eye[0] and left_mouth[0] < nose[0] < right_mouth[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
    assert all(contains(box, point) for point in box.landmarks)


def test_mtcnn_finds_a_face_of_the_built_in_benchmark_and_its_landmarks():
    """Generated faces at RAF-DB's 100 px: MTCNN finds them, its landmarks near the generator's."""
    pixels, drawn = render(draw_sample(sample_rng(seed=0, split="test", index=0), "surprise",
                                       config=SynthConfig()), size=100)
    [box] = detect_faces(Image.fromarray(pixels))
    truth = np.vstack([drawn["eyes"], drawn["nose"], drawn["outline"][[12, 13]]])
    assert np.abs(np.array(box.landmarks) - truth).max() < 8  # pixels of 100


def test_a_stricter_probability_drops_boxes_and_a_bad_one_is_refused(grace_hopper):
    assert detect_faces(grace_hopper, min_probability=1.0) == []
    with pytest.raises(ValueError, match=r"min_probability must lie in \[0, 1\], not 1.5"):
        detect_faces(grace_hopper, min_probability=1.5)
    with pytest.raises(ValueError, match="unknown face detector 'dlib'; choose one of mtcnn, haar"):
        detect_faces(grace_hopper, detector="dlib")


def test_without_facenet_pytorch_mtcnn_says_how_to_install_it(grace_hopper, monkeypatch):
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)
    monkeypatch.setitem(sys.modules, "facenet_pytorch.models.mtcnn", None)
    faces._mtcnn.cache_clear()
    try:
        with pytest.raises(DetectorUnavailableError, match="pip install --no-deps -r requirements-nodeps.txt"):
            detect_faces(grace_hopper)
        assert len(detect_faces(grace_hopper, detector="haar")) == 1
    finally:
        faces._mtcnn.cache_clear()


def test_haar_finds_the_one_face_in_a_real_photo(grace_hopper):
    boxes = detect_faces(grace_hopper, detector="haar")
    assert len(boxes) == 1
    box = boxes[0]
    assert box.source == "frontal" and box.w == box.h
    assert contains(box, FACE_CENTRE)
    assert 200 < box.w < 450
    assert box.x >= 0 and box.y >= 0 and box.x + box.w <= 512 and box.y + box.h <= 600


def test_boxes_found_on_a_downscaled_copy_map_back_to_full_resolution(grace_hopper):
    small = detect_faces(grace_hopper, detector="haar")[0]
    large = grace_hopper.resize((2048, 2400), Image.Resampling.BILINEAR)
    boxes = detect_faces(large, detector="haar", max_side=600)
    assert len(boxes) == 1
    assert contains(boxes[0], (FACE_CENTRE[0] * 4, FACE_CENTRE[1] * 4))
    assert boxes[0].w == pytest.approx(small.w * 4, rel=0.15)


def test_mtcnn_boxes_and_landmarks_found_on_a_downscaled_copy_map_back(grace_hopper, hopper_mtcnn):
    [box] = detect_faces(grace_hopper, max_side=256)
    assert box.w == pytest.approx(hopper_mtcnn.w, rel=0.1) and box.h == pytest.approx(hopper_mtcnn.h, rel=0.1)
    assert np.allclose(box.landmarks, hopper_mtcnn.landmarks, atol=6)


@pytest.mark.parametrize("detector", ["mtcnn", "haar"])
def test_no_face_in_a_plain_or_noisy_image_or_one_too_small_to_hold_one(detector):
    rng = np.random.default_rng(0)
    assert detect_faces(Image.new("RGB", (12, 8), (120, 130, 140)), detector=detector) == []
    assert detect_faces(Image.new("RGB", (300, 200), (120, 130, 140)), detector=detector) == []
    assert detect_faces(Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)), detector=detector) == []


@pytest.mark.parametrize("detector", ["mtcnn", "haar"])
def test_several_faces_are_numbered_left_to_right(grace_hopper, detector):
    face = grace_hopper.crop((60, 20, 470, 430))
    canvas = Image.new("RGB", (1000, 450), (200, 200, 200))
    canvas.paste(face, (560, 20))
    canvas.paste(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (10, 20))
    boxes = detect_faces(canvas, detector=detector, max_side=640)
    assert len(boxes) == 2
    assert boxes[0].x < boxes[1].x
    assert contains(boxes[0], (215, 215)) and contains(boxes[1], (765, 215))


def test_square_box_adds_margin_and_stays_inside_the_image():
    centred = square_box(Box(40, 40, 20, 10), (100, 100), margin=0.5)
    assert centred.as_tuple() == (30, 25, 40, 40)
    at_corner = square_box(Box(0, 0, 30, 30), (100, 80), margin=0.5)
    assert at_corner.as_tuple() == (0, 0, 60, 60)
    too_big = square_box(Box(10, 10, 90, 90), (100, 50), margin=0.2)
    assert too_big.w == too_big.h == 50 and too_big.y == 0 and 0 <= too_big.x <= 50


def test_crop_clips_to_the_image_and_refuses_boxes_outside():
    image = Image.new("RGB", (50, 40))
    assert crop(image, Box(-10, -10, 30, 30)).size == (20, 20)
    with pytest.raises(ValueError, match="outside"):
        crop(image, Box(60, 0, 10, 10))


def test_draw_boxes_outlines_each_box_on_a_shrunk_copy():
    image = Image.new("RGB", (2000, 1000), (0, 0, 0))
    annotated = draw_boxes(image, [Box(1000, 400, 400, 400)], max_side=500)
    assert annotated.size == (500, 250)
    assert annotated.getpixel((349, 150)) != (0, 0, 0)  # right edge of the scaled box
    assert annotated.getpixel((300, 150)) == (0, 0, 0)  # inside it
    assert image.getpixel((1000, 400)) == (0, 0, 0)  # the original is untouched


def test_landmarks_are_drawn_and_a_face_is_shown_up_close():
    image = Image.new("RGB", (400, 300), (0, 0, 0))
    box = Box(200, 100, 100, 100, "mtcnn", landmarks=((230.0, 130.0), (270.0, 130.0), (250.0, 150.0),
                                                       (235.0, 175.0), (265.0, 175.0)), score=0.99)
    assert draw_boxes(image, [box]).getpixel((250, 150)) == (64, 255, 64)
    close = zoom(image, box, number=3, margin=0.5)
    assert close.size == (200, 200)  # the box and half its side on every side
    assert close.getpixel((100, 100)) == (64, 255, 64)  # the nose, moved with the crop
    assert close.getpixel((149, 120)) != (0, 0, 0)  # the box's right edge


def test_shrink_keeps_small_images():
    image = Image.new("RGB", (300, 200))
    assert shrink(image, 800)[0].size == (300, 200) and shrink(image, 800)[1] == 1.0
    assert shrink(image, 150)[0].size == (150, 100)


def test_a_half_face_inside_a_face_is_thesame_face():
    face = (15, 15, 116, 116)
    assert same_face((70, 32, 65, 65), face, iou_threshold=0.3)  # a profile hit on one cheek
    assert same_face(face, (70, 32, 65, 65), iou_threshold=0.3)  # whichever comes first
    assert same_face((20, 20, 110, 110), face, iou_threshold=0.3)
    assert not same_face((140, 15, 116, 116), face, iou_threshold=0.3)
    assert not same_face((100, 15, 116, 116), face, iou_threshold=0.3)  # neighbours that touch
