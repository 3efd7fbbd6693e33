"""One sample up close (?run=NAME&split=train|test&sample=IDX[&epoch=E]): a training image with its
attention weight, p(given label), given label and prediction across epochs, its relabel events and
ground truth; a test image with its class probabilities at an epoch. The galleries, the relabel
table and the confusion drill-down link here."""
from pathlib import Path

import pandas as pd
import streamlit as st

from studio import ui
from scn import charts
from scn.predict import PROBABILITIES

SPLITS = {"train": "training image", "test": "test image"}
MAX_MATCHES = 200  # names offered for a partial match; a longer name narrows them

ui.page("Sample")
# A link names its run: it wins over the run remembered from the page the user came from.
linked = st.query_params.get("run")
if linked and st.session_state.get("run_picker_choice") != linked:
    st.session_state["run_picker_choice"] = linked
    st.session_state.pop("run_picker", None)
reader = ui.pick_run()


def query_int(name: str) -> int | None:
    try:
        return int(st.query_params[name])
    except (KeyError, ValueError):
        return None


def pick_sample() -> tuple:
    """The split and index asked for in the URL, or chosen here; the URL follows the choice, so a
    view can be bookmarked or shared."""
    asked = st.query_params.get("split", "train")
    left, right = st.columns([1, 3])
    split = left.radio("Set", list(SPLITS), index=list(SPLITS).index(asked) if asked in SPLITS else 0,
                       format_func=SPLITS.get, horizontal=True, key="sample_split")
    samples = reader.samples(split)
    if not len(samples):
        st.info(f"This run has not recorded its {SPLITS[split]}s yet.")
        return split, None, samples
    names = samples.set_index("idx")["name"]
    asked = query_int("sample")
    asked = asked if asked in names.index else int(names.index[0])
    # A link (or the split radio) names another sample: show its name in the search field.
    if st.session_state.get("sample_shown") != (split, asked):
        st.session_state["sample_name"] = names[asked]
    text = right.text_input("Image (its file name, or part of it)", key="sample_name",
                            help="e.g. train_00070 or train_00070_aligned.jpg; the sample number in "
                                 "the page's address is the run's own index of the image")
    idx = find_sample(names, text, asked=asked, container=right)
    st.session_state["sample_shown"] = (split, idx)
    st.query_params.update({"split": split, "sample": str(idx)})
    return split, idx, samples


def find_sample(names: pd.Series, text: str, *, asked: int, container) -> int:
    """The sample whose image `text` names (a file name with or without folder, suffix or
    RAF-DB's "_aligned"), or one picked among the names containing it; `asked` when none does."""
    def bare(name: str) -> str:
        return Path(name.strip()).stem.removesuffix("_aligned")

    wanted = bare(text)
    exact = names.index[names.map(bare) == wanted]
    if len(exact):
        return int(exact[0])
    matches = names[names.str.contains(wanted, regex=False, case=False)] if wanted else names.iloc[:0]
    if not len(matches):
        container.warning(f"No image of this set is named like {text!r}: showing {names[asked]}.")
        return asked
    shown = matches.head(MAX_MATCHES)
    more = f" (the first {MAX_MATCHES})" if len(matches) > MAX_MATCHES else ""
    return int(container.selectbox(f"{len(matches)} images match{more}", shown.index.tolist(),
                                   format_func=shown.get, key="sample_match"))


def large_image(name: str) -> None:
    shots = ui.sample_thumbnails(reader, [name], size=320)
    if shots is not None and shots[0] is not None:
        st.image(shots[0], caption=name, width=320)
    elif shots is not None:
        st.warning(f"{name} could not be read.")


def training_sample(idx: int, samples: pd.DataFrame, class_names: list) -> None:
    name = samples.at[idx, "name"]
    history = reader.sample_history(idx)
    events = reader.relabels()
    events = events[events["idx"] == idx]
    truth = ui.ground_truth(reader)
    original = int(samples.at[idx, "label"])
    final = int(events["new"].iloc[-1]) if len(events) else original
    left, right = st.columns([1, 2])
    with left:
        large_image(name)
    with right:
        facts = st.columns(3)
        facts[0].metric("Original label", class_names[original], help="The dataset's label")
        facts[1].metric("Label now", class_names[final], help="After the trainer's relabels")
        known = history[history["pred"] >= 0]
        facts[2].metric("Prediction", class_names[int(known["pred"].iloc[-1])] if len(known) else "–",
                        help="At the latest epoch that recorded it")
        facts = st.columns(3)
        facts[0].metric("alpha (latest)", f"{history['alpha'].iloc[-1]:.3f}" if len(history) else "–")
        facts[1].metric("p(given label)", f"{history['p_given'].iloc[-1]:.3f}"
                        if len(history) and pd.notna(history["p_given"].iloc[-1]) else "–",
                        help="At the latest epoch: the probability of the label the sample was trained "
                             "with then, the one the relabel rule compares with p_max")
        facts[2].metric("Relabels", len(events))
        if truth is not None and idx in truth.index:
            row = truth.loc[idx]
            verdict = "noisy (given label is wrong)" if row["is_noisy"] else "clean"
            extra = f" · intensity {row['intensity']:.2f}" if "intensity" in row else ""
            st.markdown(f"**Ground truth**: {class_names[int(row['true_label'])]} · {verdict} · "
                        f"degradation: {row['degradation']}{extra}")
        else:
            st.caption("No ground truth for this dataset.")
    if not len(history):
        st.info("No epoch has finished yet: a sample's history is recorded at the end of each epoch.")
        return
    ui.plotly(charts.sample_history_figure(history, events, class_names=class_names))
    if history["pred"].lt(0).all():
        st.caption("This run was recorded before predictions and p(given label) were kept: alpha only.")
    if len(events):
        decisions = reader.reviews().set_index("event_id")["decision"]
        st.markdown("**Relabel events**")
        st.dataframe(pd.DataFrame({
            "id": events["id"], "epoch": events["epoch"], "step": events["step"],
            "old": events["old"].map(dict(enumerate(class_names))),
            "new": events["new"].map(dict(enumerate(class_names))),
            **{column: ui.blank_missing(events[column], "{:.3f}") for column in ("p_max", "p_given", "alpha")},
            "group": events["grp"].fillna(""), "review": [decisions.get(i, "") for i in events["id"]],
        }), hide_index=True, width="stretch")


def test_sample(idx: int, samples: pd.DataFrame, class_names: list) -> None:
    name, label = samples.at[idx, "name"], int(samples.at[idx, "label"])
    epochs = reader.prediction_epochs()
    left, right = st.columns([1, 2])
    with left:
        large_image(name)
    with right:
        if not epochs:
            st.metric("Label", class_names[label])
            st.info("No per-sample test predictions recorded for this run (they are written at the "
                    "end of each epoch; runs recorded before they were kept have none).")
            return
        asked = query_int("epoch")
        epoch = st.select_slider("Epoch", epochs, value=asked if asked in epochs else epochs[-1],
                                 key="sample_epoch") if len(epochs) > 1 else epochs[0]
        st.query_params["epoch"] = str(epoch)
        row = reader.predictions(epoch).loc[idx]
        pred = int(row["pred"])
        facts = st.columns(3)
        facts[0].metric("True class", class_names[label], help="The test set's label")
        facts[1].metric("Predicted", class_names[pred])
        facts[2].metric("p(predicted)", f"{row[class_names[pred]]:.3f}")
        ui.plotly(charts.probability_figure(row[class_names].to_numpy(float), class_names=class_names,
                                            top=class_names[pred]))
        st.caption(f"Epoch {epoch}: " + ("right." if pred == label else
                                         f"wrong (p({class_names[label]}) = {row[class_names[label]]:.3f}).")
                   + f" {PROBABILITIES}, as on the Predict page.")


if reader is not None:
    with ui.run_guard(reader):
        split, idx, samples = pick_sample()
        if idx is not None:
            class_names = reader.class_names()
            samples = samples.set_index("idx")
            (training_sample if split == "train" else test_sample)(idx, samples, class_names)
