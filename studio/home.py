"""SCN Studio home: the runs, their state, and starting new ones (app.py makes it the default page)."""
from pathlib import Path

import pandas as pd
import streamlit as st
import torch

from studio import ui
from scn import comparison, runs, starts
from scn.classes import CLASS_NAMES
from scn.config import PRESETS, START_NAMES, make_config, option_argv, option_specs
from scn.data import check_dataset
from scn.lock import RunLockedError
from scn.model import PretrainedWeightsError
from scn.store import AppWriter, RunNotFoundError, RunReadOnlyError, list_runs, runs_root

# What the method choice turns on or off (config.json option names).
METHODS = {
    "SCN": {"method": "scn"},
    "Baseline (ResNet-18, cross-entropy)": {"method": "baseline"},
    "SCN without rank regularisation": {"method": "scn", "rank_reg": False},
    "SCN without relabelling": {"method": "scn", "relabel": False},
    "SCN without attention weighting": {"method": "scn", "attention": False},
}
BUILT_IN, FOLDER = "Built-in benchmark", "Dataset folder"
FORMAT_LABELS = {"rafdb": "RAF-DB (EmoLabel + Image/aligned)", "imagefolder": "ImageFolder (one folder per class)",
                 "fer2013": "FER2013 (fer2013.csv)", "ferplus": "FERPlus (fer2013.csv + fer2013new.csv)",
                 "affectnet": "AffectNet (training.csv + validation.csv)"}
WITH_CONTEMPT = ("ferplus", "affectnet")
# The form's help texts are the trainer's own (scn.config), so the two never disagree.
HINTS = {name: spec.help for name, spec in option_specs().items()}
# The form starts as the one-click demo is set up; a field left empty takes the chosen preset's value.
FORM_PRESET = "demo"


def preset_value(name: str) -> str:
    """What an empty field of option `name` trains with: the chosen preset's value, else the
    option's default (scn.config), as the field's placeholder."""
    value = PRESETS[st.session_state.get("preset", FORM_PRESET)].get(name, option_specs()[name].default)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def start(*, label: str, options: dict) -> None:
    try:
        option_argv(options)  # an out-of-range value is refused before a run folder exists,
        make_config(**options)  # and so is a combination the trainer refuses (dlib-face under 112 px)
    except ValueError as exc:
        ui.flash(f"Not started: {exc}", kind="error")
        return
    run_dir = runs.new_run_dir(root=runs_root(), label=label)
    try:
        pid = runs.start_run(run_dir=run_dir, options=options)
    except (RunLockedError, runs.TrainerExitedError) as exc:
        removed = runs.discard_unstarted(run_dir)
        ui.flash(f"{run_dir.name}: {exc}" + (" Its empty run folder was removed." if removed else ""),
                 kind="error")
    else:
        ui.flash(f"Started {run_dir.name} (pid {pid}); it trains in the background.")


def start_demo() -> None:
    code, message = runs.launch_demo(root=runs_root())
    ui.flash(message, kind={0: "success", 3: "warning", None: "info"}.get(code, "error"))


def start_from_form() -> None:
    state = st.session_state
    options = dict(METHODS[state.method])
    if state.dataset == BUILT_IN:
        options |= {"synth_train": state.synth_train, "synth_test": state.synth_test,
                    "synth_noise": state.synth_noise, "synth_noise_model": state.synth_noise_model}
    else:
        problem = check_dataset(state.data_path, format=state.data_format,
                                noise_file=state.noise_file.strip() or None, contempt=state.contempt)
        if problem:
            ui.flash(f"Not started: {problem}", kind="error")
            return
        options |= {"data": str(Path(state.data_path).expanduser().resolve()),
                    "format": state.data_format, "noise_file": state.noise_file.strip() or None,
                    "contempt": state.contempt}
    problem = pretrained_problem(state.pretrained, load=True)
    if problem:
        ui.flash(f"Not started: {problem}", kind="error")
        return
    options["pretrained"] = pretrained_option(state.pretrained)
    for name in ("preset", "epochs", "batch_size", "image_size", "lr", "relabel_epoch", "beta",
                 "margin_1", "margin_2", "relabel_scope", "seed", "threads", "device"):
        options[name] = state[name]
    options["processes"] = state.get("processes")
    start(label=state.run_label.strip() or options["method"], options=options)


def pretrained_option(text: str) -> str | None:
    """The trainer's --pretrained value for the form's field: empty (the trainer's default: the
    dlib-face network on the built-in benchmark), a start name or a resolved path."""
    text = text.strip()
    if text in ("", *START_NAMES):
        return text or None
    return str(Path(text).expanduser().resolve())


def pretrained_problem(text: str, *, load: bool = False) -> str | None:
    """Caught here rather than by the trainer, so the form says so before a run folder exists.
    With `load`, a file is loaded as the trainer would load it: done on Start, not on every
    rerun of the form."""
    path = pretrained_option(text)
    if path is None or path in START_NAMES:
        return None
    if not Path(path).is_file():
        return f"pretrained weights file not found: {path}"
    if load:
        try:
            starts.build_model(len(CLASS_NAMES), start=path)
        except PretrainedWeightsError as exc:
            return str(exc)
    return None


# The run's reported accuracy: the test split scores the checkpoint the validation split chose,
# never a maximum over test epochs (that would choose the model on the test set).
SELECTED_COLUMN = "test acc. (val-selected)"
PERCENT = "%.1f%%"
SELECTED_HELP = ("Test accuracy of the epoch with the highest validation accuracy (the best "
                 "checkpoint); the last epoch's for a run without a validation split (--val-fraction 0)")


def runs_table(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers first and the long descriptions last, so accuracy is on screen on a laptop.
    Accuracies are in percent, shown at one decimal: Streamlit's "percent" format gives a progress
    column one decimal and a number column two."""
    return pd.DataFrame({
        "run": table["name"],
        "status": table["status"],
        "epoch": [f"{e} of {t}" if t else str(e) for e, t in zip(table["epoch"], table["total_epochs"])],
        SELECTED_COLUMN: 100 * table["selected_test_accuracy"].astype(float),
        "last test acc.": 100 * table["last_test_accuracy"].astype(float),
        "method": table["method"].fillna(""),
        "tags": table["tags"],
        "note": [note.splitlines()[0] if note else "" for note in table["note"]],
        "started": [ui.started_label(s) for s in table["started"]],
        "dataset": table["dataset"].fillna(""),
        "problem": table["problem"].fillna(""),
    })


ui.page("SCN Studio")
st.caption("Self-Cure Network (Wang et al., CVPR 2020) for facial expression recognition: train in "
           "the background, watch attention weights and relabels live.")
ui.show_flash()


def tagged(table: pd.DataFrame, tags: list) -> pd.DataFrame:
    """The runs that carry every one of `tags`."""
    return table[[set(tags) <= set(run_tags) for run_tags in table["tags"]]] if tags else table


@st.fragment(run_every=ui.REFRESH_SECONDS)
def runs_overview() -> None:
    table = list_runs()
    if not len(table):
        st.info(f"No runs yet in {runs_root()}. Start the demo or a new run below.")
        return
    every_tag = sorted({tag for tags in table["tags"] for tag in tags})
    if every_tag:
        table = tagged(table, st.multiselect("Show the runs tagged", every_tag, key="tag_filter",
                                             placeholder="all runs (choose tags to narrow)"))
    st.dataframe(runs_table(table), hide_index=True, width="stretch",
                 column_config={SELECTED_COLUMN: st.column_config.ProgressColumn(
                     format=PERCENT, min_value=0.0, max_value=100.0, help=SELECTED_HELP),
                     "last test acc.": st.column_config.NumberColumn(format=PERCENT),
                     "tags": st.column_config.ListColumn(),
                     "note": st.column_config.TextColumn(width="medium"),
                     "dataset": st.column_config.TextColumn(width="medium")})


def run_panel(reader) -> None:
    with ui.run_guard(reader):
        if ui.status_panel(reader)["state"] != "damaged":
            ui.collapse_banner(reader)
        st.page_link("pages/1_Training.py", label="Watch it train", icon=":material/monitoring:")


def save_annotations(reader) -> None:
    state = st.session_state
    try:
        AppWriter(reader.run_dir).annotate(note=state[f"note-{reader.name}"], tags=state[f"tags-{reader.name}"])
    except (ValueError, RunReadOnlyError) as exc:
        ui.flash(f"Not saved: {exc}", kind="error")
    else:
        ui.flash(f"Saved the notes and tags of {reader.name}.")


def ask_delete(name: str) -> None:
    st.session_state["delete_pending"] = name


def cancel_delete() -> None:
    st.session_state.pop("delete_pending", None)


# Opened from session state rather than straight from the button, so that the dialog is still
# there when its own buttons rerun the page (and the test harness, which reruns whole pages, sees it).
@st.dialog("Delete this run?", on_dismiss=cancel_delete)
def confirm_delete(reader) -> None:
    st.markdown(f"**{reader.name}** and everything in its folder (records, checkpoints, log) will be "
                f"deleted from {reader.run_dir.parent}. This cannot be undone.")
    yes, no = st.columns(2)
    if yes.button("Delete", type="primary", key="delete_confirmed"):
        try:
            runs.delete_run(reader.run_dir)
        except (RunLockedError, RunNotFoundError) as exc:
            st.error(f"Not deleted: {exc}")
            return
        cancel_delete()
        ui.flash(f"Deleted {reader.name}.")
        st.session_state.pop("run_picker_choice", None)
        st.rerun()
    if no.button("Cancel", key="delete_cancelled"):
        cancel_delete()
        st.rerun()


def manage(reader) -> None:
    """Notes and tags (saved in the run), and deleting the run, refused while it trains."""
    with ui.run_guard(reader):
        notes = reader.annotations()
        with st.form(f"annotations-{reader.name}"):
            note, tags = st.columns([2, 1])
            note.text_area("Notes", notes["note"], key=f"note-{reader.name}", height=80,
                           placeholder="What this run tried, what went wrong, what to try next")
            tags.text_input("Tags (comma-separated)", ", ".join(notes["tags"]), key=f"tags-{reader.name}",
                            placeholder="e.g. noise30, lr-sweep")
            st.form_submit_button("Save notes and tags", on_click=save_annotations, args=(reader,))
        training = reader.status()["alive"]
        st.button("Delete this run…", key="delete_run", disabled=training, on_click=ask_delete,
                  args=(reader.name,), help="Stop it first: a run is not deleted while it trains" if training else None)
        if st.session_state.get("delete_pending") == reader.name:
            confirm_delete(reader)


st.subheader("Runs")
runs_overview()
if pair := comparison.demo_pair(list_runs()):
    with st.expander("Demo verdict: SCN against the baseline", expanded=True):
        readers = {label: ui.open_run(name) for label, name in pair.items()}
        if all(readers.values()):
            ui.live(ui.comparison_card, {label: [reader] for label, reader in readers.items()},
                    readers=list(readers.values()))
# With no runs, runs_overview has said so; the picker would say it again.
selected = ui.pick_run(label="Selected run") if len(list_runs()) else None
if selected is not None:
    ui.run_controls(selected, key="home")
    ui.live(run_panel, selected, readers=[selected])
    manage(selected)

st.subheader("One-click demo")
demo = runs.DEMO_DATA
minutes = runs.demo_minutes()
st.markdown(f"SCN and the baseline, side by side, on the built-in benchmark ({demo['synth_train']:,} synthetic "
            f"training faces, {demo['synth_noise']:.0%} of labels wrong), both from dlib's face-recognition "
            "network" + (f": about {minutes} minutes on a 2-core CPU, the first time included "
                         "(measured by bench/demo.py)." if minutes else "."))
st.button("Start the demo", type="primary", on_click=start_demo, key="start_demo")

st.subheader("New run")
left, right = st.columns(2)
with right:
    st.selectbox("Preset", tuple(PRESETS), index=list(PRESETS).index(FORM_PRESET), key="preset",
                 help=HINTS["preset"] + ". Fields left empty take the preset's value.")
with left:
    dataset = st.radio("Dataset", (BUILT_IN, FOLDER), key="dataset", horizontal=True)
    if dataset == BUILT_IN:
        st.number_input("Training images", 100, 100_000, value=None, step=500, key="synth_train",
                        help=HINTS["synth_train"], placeholder=preset_value("synth_train"))
        st.number_input("Test images", 50, 20_000, value=None, step=250, key="synth_test",
                        help=HINTS["synth_test"], placeholder=preset_value("synth_test"))
        st.number_input("Label noise (share of wrong labels)", 0.0, 0.95, value=None, step=0.05,
                        key="synth_noise", help=HINTS["synth_noise"], placeholder=preset_value("synth_noise"))
        st.selectbox("Noise model", option_specs()["synth_noise_model"].limits["choices"],
                     key="synth_noise_model", help=HINTS["synth_noise_model"])
    else:
        path = st.text_input("Folder", key="data_path", placeholder="/data/RAF-DB/basic")
        st.selectbox("Format", tuple(FORMAT_LABELS), key="data_format", format_func=FORMAT_LABELS.get)
        st.checkbox("Contempt as an 8th class", value=True, key="contempt",
                    disabled=st.session_state.data_format not in WITH_CONTEMPT,
                    help="FERPlus and AffectNet: keep the contempt faces as an 8th class; untick to "
                         "drop them and train 7 classes (--no-contempt)")
        st.text_input("Label-noise file (optional; SCN or EAC format)", key="noise_file",
                      placeholder="0.1noise_train.txt")
        if path:
            problem = check_dataset(path, format=st.session_state.data_format,
                                    noise_file=st.session_state.noise_file.strip() or None,
                                    contempt=st.session_state.contempt)
            if problem:
                st.error(problem)
            else:
                st.success("Dataset folder looks right.")
    st.selectbox("Method", list(METHODS), key="method")
    st.text_input("Run name (optional)", key="run_label", placeholder="e.g. scn-noise30")
with right:
    a, b = st.columns(2)
    a.number_input("Epochs", 1, 200, value=None, key="epochs", help=HINTS["epochs"],
                   placeholder=preset_value("epochs"))
    b.number_input("Relabel from epoch", 1, 200, value=None, key="relabel_epoch", help=HINTS["relabel_epoch"],
                   placeholder=preset_value("relabel_epoch"))
    a.number_input("Image size", 32, 256, value=None, step=16, key="image_size", placeholder=preset_value("image_size"),
                   help=HINTS["image_size"] + "; dlib-face needs 112 px or more and reads faces best at 150 px")
    b.number_input("Threads", 1, 64, value=None, key="threads", help=HINTS["threads"], placeholder="all cores")
    a.number_input("Batch size", 2, 4096, value=None, key="batch_size", help=HINTS["batch_size"],
                   placeholder=preset_value("batch_size"))
    b.number_input("Learning rate", 1e-6, 1.0, value=None, format="%g", key="lr", help=HINTS["lr"],
                   placeholder=preset_value("lr"))
    a.number_input("beta (high-group share)", 0.05, 0.95, value=None, key="beta", help=HINTS["beta"],
                   placeholder=preset_value("beta"))
    b.number_input("margin_1 (rank regularisation)", 0.0, 1.0, value=None, key="margin_1",
                   help=HINTS["margin_1"], placeholder=preset_value("margin_1"))
    a.number_input("margin_2 (relabel)", 0.0, 1.0, value=None, key="margin_2", help=HINTS["margin_2"],
                   placeholder=preset_value("margin_2"))
    b.selectbox("Relabel scope", (None, "low", "all"), key="relabel_scope", help=HINTS["relabel_scope"],
                format_func={None: "preset (official: all samples, paper and demo: low group)",
                             "low": "low-importance group (paper)", "all": "all samples (official code)"}.get)
    a.number_input("Seed", 0, 2**31 - 1, option_specs()["seed"].default, key="seed", help=HINTS["seed"])
    b.selectbox("Device", ("auto", "cpu", "cuda"), key="device", help=HINTS["device"])
    if (gpus := torch.cuda.device_count()) > 1:
        a.number_input("GPUs (one process each)", 1, gpus, 1, key="processes", help=HINTS["processes"])
    st.text_input("Start from weights (optional)", key="pretrained",
                  placeholder="dlib-face on the built-in benchmark",
                  help="Empty: dlib-face (dlib's face-recognition network, trained on real faces for "
                       "identity, no expression labels) on the built-in benchmark, random weights on a "
                       "dataset folder. 'synth-face': a ResNet-18 trained on synthetic identities (built "
                       "once on first use). 'none': random weights "
                       "(SCN tends to collapse from them: see docs/results.md). A checkpoint of "
                       "ours, a plain ResNet-18 state dict or the official SCN MS-Celeb file; only the "
                       "backbone is loaded. 'imagenet' uses torchvision's weights if they are in the "
                       "local torch cache.")
    if problem := pretrained_problem(st.session_state.pretrained):
        st.error(problem)
st.button("Start", type="primary", on_click=start_from_form, key="start_run")
