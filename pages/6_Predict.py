"""Predict: expression probabilities, attention weight and Grad-CAM for every face in a photo.

Upload photos or take one with the camera, pick a run (by default the newest finished one) and its
best or last checkpoint (a run that is still training works too). Faces are found with MTCNN and
aligned on its five landmarks as the training faces are framed (OpenCV's Haar cascades, without
alignment, to compare); a wrong box can be removed and a missed face added by hand, and where none
is found the whole image or a hand-drawn square can be used instead.
"""
from dataclasses import astuple

import numpy as np
import streamlit as st
from PIL import Image

from studio import ui
from scn import charts
from scn.checkpoint import CheckpointError, load_model
from scn.selection import missing_best_reason
from scn.faces import DETECTORS, Box, DetectorUnavailableError, draw_boxes, zoom
from scn.images import ImageLoadError, load_image
from scn.predict import (PROBABILITIES, UNSURE_ALPHA, alpha_percentile, predict_image, trained_on,
                         training_alphas)
from scn.store import CONFIG_NAME, RunDamagedError

PREVIEW_SIDE = 1200
DETECTOR_NAMES = {"mtcnn": "MTCNN, aligned on 5 landmarks", "haar": "Haar cascades (older, no alignment)"}
MIN_FACE_SIDE = 16  # the smallest square a user may choose as a face


@st.cache_resource(max_entries=4, show_spinner="Loading the model...")
def cached_model(path: str, mtime_ns: int):
    """One model per checkpoint file version: a rewritten checkpoint has a new mtime_ns."""
    return load_model(path, device="cpu")


@st.cache_data(ttl=30, show_spinner=False)
def cached_training_alphas(run_dir: str) -> np.ndarray:
    # A live run records a new epoch every few minutes; 30 s staleness is invisible here.
    return training_alphas(run_dir)


@st.cache_data(max_entries=32, show_spinner="Finding faces and predicting...")
def analyse(path: str, mtime_ns: int, data: bytes, name: str, region: tuple):
    """(annotated preview, image size, predictions, each face's box up close); region is
    ("detect", detector), ("whole",) or ("boxes", (x, y, w, h, source, landmarks, score), ...).

    Cached so that widget changes rerun the page without decoding and predicting again.
    Raises ImageLoadError, which Streamlit does not cache, for a file that is not a usable image,
    and DetectorUnavailableError where MTCNN's package is missing.
    """
    model, meta = cached_model(path, mtime_ns)
    image = load_image(data, name=name)
    faces = predict_image(model, meta, image, whole_image=region[0] == "whole",
                          boxes=[Box(*b) for b in region[1:]] if region[0] == "boxes" else None,
                          detect_options={"detector": region[1]} if region[0] == "detect" else None)
    zooms = [zoom(image, f.box, number=n) for n, f in enumerate(faces, start=1)]
    return draw_boxes(image, [f.box for f in faces], max_side=PREVIEW_SIDE), image.size, faces, zooms


@st.cache_data(max_entries=64, show_spinner=False)
def overlay_for_class(path: str, mtime_ns: int, crop: np.ndarray, cam_class: str) -> np.ndarray:
    """Grad-CAM overlay of an already cropped face for another class than its top one."""
    model, meta = cached_model(path, mtime_ns)
    # The crop is already what the model saw (aligned or cut square): predicted as a whole image.
    return predict_image(model, meta, Image.fromarray(crop), whole_image=True, cam_class=cam_class)[0].overlay


def alpha_caption(alpha: float, training: np.ndarray, method: str) -> str:
    if method == "baseline":
        return "Baseline run: it has no attention head, so the attention weight alpha does not exist."
    percentile = alpha_percentile(alpha, training)
    if percentile is None:
        return "No training epoch recorded yet, so there is no distribution to compare with."
    if percentile == 0:
        return ("Lower than every training sample's weight (latest recorded epoch): the model is "
                "less sure of this face than of any image it trained on.")
    return (f"Higher than or equal to {percentile:.0f}% of the run's training samples' weights "
            f"(latest recorded epoch). Low weights mark faces the model finds uncertain.")


def square_inputs(key: str, size: tuple) -> Box:
    """A square picked with number inputs (side, left, top), centred and as large as fits at first."""
    width, height = size
    left, middle, right = st.columns(3)
    side = middle.number_input("side (px)", MIN_FACE_SIDE, min(width, height), min(width, height),
                               key=f"side-{key}")
    x = left.number_input("left (px)", 0, width - side, (width - side) // 2, key=f"x-{key}")
    y = right.number_input("top (px)", 0, height - side, (height - side) // 2, key=f"y-{key}")
    return Box(int(x), int(y), int(side), int(side), "manual")


def choose_region(key: str, size: tuple):
    """The fallback when no face is found: the whole image, or a square picked with number inputs."""
    if min(size) < MIN_FACE_SIDE:
        st.error(f"The image is {size[0]}x{size[1]} px: too small to hold a face "
                 f"(at least {MIN_FACE_SIDE} px a side).")
        return None
    choice = st.radio("Predict anyway on", ["the whole image", "a square I choose"], index=None,
                      key=f"fallback-{key}", horizontal=True)
    if choice == "the whole image":
        return ("whole",)
    if choice == "a square I choose":
        return ("boxes", astuple(square_inputs(key, size)))
    return None


def box_label(box: Box) -> str:
    return f"x={box.x} y={box.y} {box.w}x{box.h} px ({box.source})"


def seen_caption(face) -> str:
    if face.box.landmarks:
        return "aligned on its 5 landmarks, as the model sees it"
    return "square face crop, as the model sees it"


def _add_box(key: str, box: Box) -> None:
    added = st.session_state[f"added-{key}"]
    if box not in added:
        added.append(box)
        st.session_state[f"keep-{key}"] = st.session_state[f"keep-{key}"] + [box]


def edit_boxes(key: str, detected: list, size: tuple) -> list:
    """The boxes to predict on: the detected ones the user keeps (a wrong box is removed from the
    list) and squares the user adds for faces the detector missed, in the order the list shows."""
    width, height = size
    # Another photo uploaded under the same name and place inherits this state: keep what fits it.
    added = st.session_state[f"added-{key}"] = [b for b in st.session_state.get(f"added-{key}", [])
                                                if b.x + b.w <= width and b.y + b.h <= height]
    st.session_state[f"keep-{key}"] = [b for b in st.session_state.get(f"keep-{key}", detected)
                                       if b in detected + added]
    kept = st.multiselect("Faces to predict (remove a wrong box here)", detected + added, key=f"keep-{key}",
                          format_func=box_label)
    with st.expander("Add a face the detector missed"):
        square = square_inputs(key, size)
        st.button("Add this square", key=f"add-{key}", on_click=_add_box, args=(key, square))
    return kept


def show_faces(key: str, faces, zooms, checkpoint: tuple, training: np.ndarray, method: str) -> None:
    for number, (face, region) in enumerate(zip(faces, zooms), start=1):
        score = "" if face.box.score is None else f", detector probability {face.box.score:.3f}"
        headline = (f"unsure ({face.unsure}; best guess {face.top_class}, {face.confidence:.0%})"
                    if face.unsure else f"{face.top_class} ({face.confidence:.0%})")
        st.markdown(f"**Face {number}**: {headline}, box {box_label(face.box)}{score}")
        found, seen, cam, chart = st.columns([1, 1, 1, 1.6])
        found.image(region, caption="in the photo" + (", with its landmarks" if face.box.landmarks else ""),
                    width="stretch")
        seen.image(face.crop, caption=seen_caption(face), width="stretch")
        names = list(face.class_names)
        cam_class = cam.selectbox("Grad-CAM for class", names, index=names.index(face.top_class),
                                  key=f"cam-{key}-{number}")
        picture = face.overlay if cam_class == face.cam_class else overlay_for_class(
            *checkpoint, np.asarray(face.crop), cam_class)
        cam.image(picture, caption=f"Grad-CAM for {cam_class} (last residual block)", width="stretch")
        with chart:
            ui.plotly(charts.probability_figure(face.probs, class_names=face.class_names, top=face.top_class),
                      key=f"probs-{key}-{number}")
            st.caption(PROBABILITIES + ("" if method == "baseline" else
                                        "; alpha, below, is the model's certainty about this face."))
            if method != "baseline":
                st.metric("attention weight alpha (certainty)", f"{face.alpha:.3f}")
            if method != "baseline" and face.alpha < UNSURE_ALPHA:
                st.warning(f"alpha is near 0 (below {UNSURE_ALPHA}): the model is very unsure about this "
                           "face, so the class above is a weak guess. Uncertain faces are what SCN "
                           "learns to down-weight: occluded, blurred, ambiguous or unlike the training data.")
            st.caption(alpha_caption(face.alpha, training, method))


ui.page("Predict")
reader = ui.pick_run(default_state="finished")
if reader is None:
    st.stop()
if (status := reader.status())["state"] == "damaged":
    st.error(f"{status['message']}. Its records cannot be shown; its checkpoints still predict.")
available = reader.checkpoints()
if not available:
    st.warning(f"Run {reader.name} has no checkpoint yet: it writes one at the end of its first epoch.")
    st.stop()
which = st.radio("Checkpoint", available, horizontal=True)
if "best" not in available:
    st.caption(f"No best checkpoint: {missing_best_reason(reader.run_dir / CONFIG_NAME)}. The last one is used.")
checkpoint_file = reader.checkpoint_path(which).resolve()
checkpoint = (str(checkpoint_file), checkpoint_file.stat().st_mtime_ns)
try:
    _, meta = cached_model(*checkpoint)
except CheckpointError as exc:
    st.error(f"Cannot use this checkpoint: {exc}")
    st.stop()
st.info(f"This model was trained on **{trained_on(meta)}**. On photos unlike that data its predictions "
        "are a demonstration, not a measurement: do not over-trust them.")
method = meta["model_config"]["method"]
try:
    training = cached_training_alphas(str(reader.run_dir))
except RunDamagedError as exc:
    st.warning(f"{exc}: predicting from the checkpoint alone, without the training alphas.")
    training = np.zeros(0)

uploads = st.file_uploader("Photos", accept_multiple_files=True, key="uploads")
detector = st.radio("Face detector", DETECTORS, format_func=DETECTOR_NAMES.get, horizontal=True, key="detector")
photo = st.camera_input("Camera photo", key="camera") if st.toggle("Use the camera") else None
inputs = [(f"{i}-{u.name}", u.name, u.getvalue()) for i, u in enumerate(uploads or [])]
if photo is not None:
    inputs.append(("camera", "camera photo", photo.getvalue()))
if not inputs:
    st.caption("Upload one or more photos, or switch on the camera.")

for key, name, data in inputs:
    st.subheader(name)
    try:
        preview, size, faces, zooms = analyse(*checkpoint, data, name, ("detect", detector))
    except (ImageLoadError, DetectorUnavailableError) as exc:
        st.error(str(exc))
        continue
    if not faces:
        st.warning(f"No face found in {name}.")
        region = choose_region(key, size)
        if region is None:
            st.image(preview, width=PREVIEW_SIDE // 2)
            continue
        preview, size, faces, zooms = analyse(*checkpoint, data, name, region)
    elif (boxes := edit_boxes(key, [f.box for f in faces], size)) != [f.box for f in faces]:
        preview, size, faces, zooms = analyse(*checkpoint, data, name, ("boxes", *map(astuple, boxes)))
    st.image(preview, caption=f"{len(faces)} face(s), numbered as listed below")
    show_faces(key, faces, zooms, checkpoint, training, method)
