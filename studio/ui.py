"""Streamlit-side pieces the pages share: page set-up, the run picker (remembered across pages and
in the URL), a run's status panel with its Stop/Resume buttons, and plain messages instead of
tracebacks when a run folder disappears under an open page. Everything computed lives in scn/."""
import re
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from scn import analysis, builds, charts, collapse, comparison, lock, review, runs, thumbnails
from scn.lock import RunLockedError
from scn.store import DB_NAME, RunDamagedError, RunNotFoundError, RunReader, list_runs, runs_root
from scn.synth.cache import studio_cache
from scn.synth.noise import AMBIGUOUS

# The repository root: app.py and pages/ are beside this package.
ROOT = Path(__file__).resolve().parent.parent
# Live views of a run with a live trainer rerun this often: a newly written epoch shows within
# REFRESH_SECONDS plus a render. Views of runs without one (finished, stopped) change only when
# someone resumes them, so they look again less often and spare a CPU that may be training.
REFRESH_SECONDS = 2
# The page that shows one sample up close; its URL path is the file name without number and suffix.
SAMPLE_PAGE = "pages/7_Sample.py"
SAMPLE_PAGE_PATH = "Sample"
IDLE_REFRESH_SECONDS = 10
# States of a trainer that has not trained a step yet (it builds or waits for its data and backbone).
STARTING = ("created", "starting")
# Colours of a run's state in markdown (no emoji: headless servers often lack an emoji font).
STATE_COLORS = {"created": "gray", "starting": "orange", "running": "green", "finished": "blue",
                "stopped": "gray", "failed": "red", "interrupted": "orange", "damaged": "red"}


def home_page() -> st.Page:
    """The home page (studio/home.py: the runs and the new-run form), the app's default page at /."""
    return st.Page(ROOT / "studio" / "home.py", title="Home", icon=":material/home:", default=True)


def app_pages() -> list:
    """The home page, then every file in pages/ in the order of its number prefix, titled and
    addressed by its name as Streamlit's pages/ convention has it (pages/1_Training.py is
    "Training" at /Training): a page another engineer adds to pages/ appears without a change here."""
    def order(path: Path) -> tuple:
        number = re.match(r"\d+", path.name)
        return (int(number.group()) if number else float("inf"), path.name)

    return [home_page()] + [st.Page(path) for path in sorted((ROOT / "pages").glob("*.py"), key=order)]


def page(title: str) -> None:
    st.set_page_config(page_title=f"{title} · SCN Studio", page_icon=":material/psychology:", layout="wide")
    st.title(title)


def plotly(figure, *, key: str | None = None, **selection):
    """A plotly figure at full width; `selection` (on_select=..., selection_mode=...) makes it
    clickable, and then its selection state is returned."""
    return st.plotly_chart(figure, width="stretch", key=key, config={"displaylogo": False}, **selection)


def run_colors() -> dict:
    """Every run's chart colour (scn.charts.run_colors over all runs in the store), so a run has the
    same colour on every page whichever runs a page shows."""
    root = runs_root()
    names = [p.name for p in root.iterdir() if (p / DB_NAME).exists()] if root.is_dir() else []
    return charts.run_colors(names)


def no_runs_message() -> None:
    st.info("No runs yet. Start one from the home page: the one-click demo trains SCN and the "
            "baseline on the built-in benchmark.")
    st.page_link(home_page(), label="Go to the home page", icon=":material/home:")


def default_run(table: pd.DataFrame, *, state: str | None = None) -> str:
    """The run a page opens on when none was chosen: the newest SCN run (every page has something
    to show for one, while a baseline has no attention weights or relabels), with `state` (e.g.
    "finished") the newest SCN run in that state; failing that the newest run in that state, and
    failing that the newest run. `table` is list_runs's, newest first."""
    method = table["method"].fillna("")
    is_scn = method.str.startswith("SCN") & ~method.str.contains("w/o", regex=False)  # not an ablation
    in_state = table["status"].eq(state) if state else pd.Series(True, index=table.index)
    for wanted in (is_scn & in_state, in_state, is_scn):
        if wanted.any():
            return table.loc[wanted, "name"].iloc[0]
    return table["name"].iloc[0]


def pick_run(*, label: str = "Run", key: str = "run_picker", exclude: str | None = None,
             default_state: str | None = None) -> RunReader | None:
    """A select box over the runs (newest first) that remembers the choice across pages and in the
    URL (?run=NAME); None, with a message, when there is no run to pick. With nothing remembered
    it offers default_run's choice."""
    table = list_runs()
    table = table[table["name"] != exclude]
    names = table["name"].tolist()
    if not names:
        if exclude is None:
            no_runs_message()
        else:
            st.info("No other run to compare with.")
        return None
    remembered = st.session_state.get(f"{key}_choice") or st.query_params.get("run")
    if remembered not in names:
        remembered = default_run(table, state=default_state)
    status = dict(zip(table["name"], table["status"]))
    name = st.selectbox(label, names, index=names.index(remembered), key=key,
                        format_func=lambda n: f"{n} ({status[n]})")
    st.session_state[f"{key}_choice"] = name
    if key == "run_picker":
        st.query_params["run"] = name
    return open_run(name)


def open_run(name: str) -> RunReader | None:
    try:
        return RunReader(runs_root() / name)
    except RunNotFoundError:
        st.warning(f"The run folder {runs_root() / name} no longer exists.")
        return None


def live(body, *args, readers: list) -> None:
    """Show `body(*args)` as a fragment that reruns every REFRESH_SECONDS while a trainer of one of
    `readers` is alive, else every IDLE_REFRESH_SECONDS; when that changes (a run stops, or is
    resumed from elsewhere) the whole page reruns to change pace."""
    def training() -> bool:
        return any(lock.is_held(r.run_dir) for r in readers)

    alive = training()

    def paced() -> None:
        if training() != alive:
            st.rerun(scope="app")
        body(*args)

    st.fragment(paced, run_every=REFRESH_SECONDS if alive else IDLE_REFRESH_SECONDS,
                key=body.__name__)()


@contextmanager
def run_guard(reader: RunReader):
    """Turn a run folder deleted (or moved) while a page shows it into a plain message."""
    try:
        yield
    except RunDamagedError as exc:
        st.error(f"{exc}. Its checkpoints can still be used on the Predict page.")
    except (RunNotFoundError, sqlite3.OperationalError):
        if reader.run_dir.exists() and (reader.run_dir / "run.db").exists():
            raise
        st.warning(f"The run folder {reader.run_dir} no longer exists (deleted or moved).")


def refuse_damaged(reader: RunReader) -> None:
    """Raise RunDamagedError for a run whose database is damaged, so that run_guard explains it
    before a page reads tables that a damaged file can still seem to lack rather than fail on."""
    status = reader.status()
    if status["state"] == "damaged":
        raise RunDamagedError(status["message"])


def collapse_banner(reader: RunReader) -> None:
    """One warning per kind the trainer recorded (scn.collapse: a one-class training set, the ways
    a run collapses): when, the latest figures, what it means and what to try. Nothing when the
    run is healthy."""
    for line in collapse.summary(reader.warnings()):
        st.warning(f"**{line['title']}** ({line['when']}): {line['message']}.  \n"
                   f"{collapse.ADVICE.get(line['kind'], '')}", icon=":material/warning:")


def blank_missing(values: pd.Series, template: str) -> list:
    """Numbers as text in `template` and missing ones blank: st.dataframe draws a missing cell as
    a raw "None", which reads as a bug."""
    return ["" if pd.isna(v) else template.format(v) for v in values]


def flash(message: str, *, kind: str = "success") -> None:
    """Keep a message from a button callback for the rerun that follows it."""
    st.session_state.setdefault("flash", []).append((kind, message))


def show_flash() -> None:
    for kind, message in st.session_state.pop("flash", []):
        getattr(st, kind)(message)


def _stop(run_dir: str) -> None:
    if runs.stop_run(run_dir):
        flash(f"Asked {Path(run_dir).name} to stop: it finishes its step and writes a checkpoint.")
    else:
        flash(f"{Path(run_dir).name} has no live trainer.", kind="warning")


def resume(run_dir: str, **options) -> None:
    """Button callback: resume a run (scn.runs.resume_run `options`), saying how it went. The
    confirmation is kept as the session's "resumed" entry too, for pages that show it for as long
    as that trainer runs (see resumed_message)."""
    what = ""
    if options.get("reviewed_labels"):
        reader = RunReader(run_dir)
        what = (f" with {len(review.reviewed_indices(reader))} reviewed label(s), "
                f"{len(review.pending_changes(reader))} of them changed by review")
    try:
        pid = runs.resume_run(run_dir, **options)
    except (RunLockedError, runs.CannotResumeError, runs.TrainerExitedError) as exc:
        flash(str(exc), kind="error")
    else:
        message = f"Resumed {Path(run_dir).name} from its last checkpoint{what}: trainer pid {pid}."
        flash(message)
        st.session_state["resumed"] = {"run_dir": str(run_dir), "pid": pid, "message": message}


def resumed_message(reader: RunReader) -> str | None:
    """The confirmation of this session's resume of `reader`'s run while the trainer it started
    is the one training it."""
    resumed = st.session_state.get("resumed") or {}
    if resumed.get("run_dir") != str(reader.run_dir) or resumed.get("pid") != runs.trainer_pid(reader.run_dir):
        return None
    return resumed["message"]


def age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    return f"{seconds / 60:.0f} min ago" if seconds < 7200 else f"{seconds / 3600:.1f} h ago"


def run_controls(reader: RunReader, *, key: str) -> None:
    """The Stop or Resume button that applies to the run, or "stopping…" once Stop was pressed.
    Pages draw them outside their live fragments: a click that lands while a timed fragment rerun
    replaces the button can be lost, and Stop must act on the first click. A change of trainer
    (it exits, or another tab resumes the run) reruns the whole page (`live`), so they stay current."""
    show_flash()
    with run_guard(reader):
        status = reader.status()
        run_dir = str(reader.run_dir)
        columns = st.columns([1, 1, 4])
        if status["alive"] and runs.stop_requested(run_dir):
            columns[0].markdown(":orange[stopping…]", help="Stop was pressed: the trainer finishes its "
                                "step and writes checkpoints/last.pt")
        elif status["alive"] and status["state"] != "finished":
            # A finished run's trainer lives on a little to keep the Slices page's predictions;
            # there is no training left to stop.
            columns[0].button("Stop", key=f"stop_{key}", on_click=_stop, args=(run_dir,),
                              help="Graceful: the trainer finishes its step and writes checkpoints/last.pt")
        elif status["state"] in ("stopped", "interrupted", "failed") and reader.checkpoint_path("last").exists():
            columns[1].button("Resume", key=f"resume_{key}", on_click=resume, args=(run_dir,),
                              help="Continue from checkpoints/last.pt with the relabelled labels")


def status_panel(reader: RunReader) -> dict:
    """State, trainer pid and heartbeat, the progress of a shared build the run waits for, and the
    traceback or log tail of a run whose trainer failed or died. Returns the status."""
    status = reader.status()
    state = status["state"]
    if state == "finished" and status["finished"]:
        detail = f"finished {started_label(status['finished'])}"
    elif not status["alive"] and state not in STARTING:
        # The recorded pid may belong to another process by now.
        detail = f"trainer not running · last heartbeat {age(status['heartbeat_age'])}"
    else:
        pid = f"pid {status['pid']}" if status["pid"] else "no pid"
        # A starting trainer beats only once it trains: before that the heartbeat is when it began.
        beat = "began" if state in STARTING else "heartbeat"
        detail = f"{pid} · {beat} {age(status['heartbeat_age'])}"
    st.markdown(f":{STATE_COLORS.get(state, 'gray')}[**{state}**] · {detail}")
    if state in STARTING and status["alive"]:
        shared_builds()
    if state == "damaged":
        st.error(f"{status['message']}. Its records cannot be shown; its checkpoints can still be "
                 "used on the Predict page and by `python -m scn eval`.")
    elif state == "failed":
        st.error("The trainer failed.")
        st.code(status["message"] or reader.log_tail(), language="text")
    elif state == "interrupted":
        st.warning("The trainer died without marking the run (killed, crashed or the machine "
                   "restarted). Last lines of its log:")
        st.code(reader.log_tail(lines=20) or "(empty log)", language="text")
    return status


def shared_builds() -> None:
    """The shared builds (scn.builds) running now, with their progress: a starting run on the
    built-in benchmark waits for them, and its own log stays empty meanwhile."""
    for lines in builds.in_progress(studio_cache()):
        st.info("Waiting for a shared build, made once for every run that needs it: the run starts "
                "training when it is done.", icon=":material/hourglass_top:")
        st.code("\n".join(lines[:1] + ["…"] * (len(lines) > 9) + lines[1:][-8:]), language="text")


def comparison_card(groups: dict) -> None:
    """scn.comparison's verdict on two setups (name -> their runs' readers): one sentence, then
    the figures of each, their difference and the seeds' spread."""
    table = comparison.compare(groups)
    first, second = groups
    if table.empty:
        st.info("No test accuracy to compare yet: the runs have not finished an epoch.")
        return
    st.markdown(f"**{comparison.verdict(table)}**")
    # Shares in percent and their differences in points; the AUROC as the fraction it is.
    scale = [1 if figure == comparison.FIGURES["alpha_auroc"] else 100 for figure in table["figure"]]
    cells = pd.DataFrame({"figure": table["figure"]})
    for name in (first, second):
        cells[name] = [_number(mean * k, k) + "%" * (k == 100) + (f" ± {_number(sd * k, k)}" if pd.notna(sd) else "")
                       if pd.notna(mean) else "" for mean, sd, k in zip(table[name], table[f"{name} sd"], scale)]
    cells["difference"] = [f"{'+' if d >= 0 else ''}{_number(d * k, k)}" if pd.notna(d) else ""
                           for d, k in zip(table["difference"], scale)]
    cells["seeds' spread (SD)"] = [_number(s * k, k) if pd.notna(s) else "" for s, k in zip(table["spread"], scale)]
    st.dataframe(cells, hide_index=True, width="stretch")
    st.caption(f"Runs per setup: {table['runs'].iloc[0]}. Accuracies and precision in percent, their "
               "differences in points; an AUROC of 0.5 is chance, 1.0 ranks every wrong label below every "
               "right one. Report the checkpoint chosen on validation: choosing on the test set flatters a run.")


def _number(value: float, scale: int) -> str:
    return f"{value:.1f}" if scale == 100 else f"{value:.2f}"


def started_label(timestamp) -> str:
    if timestamp is None or pd.isna(timestamp):
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


class _NotYetWritten(LookupError):
    """Raised inside a cached loader so that an absent table is not cached (it comes later)."""


@st.cache_data(max_entries=16, show_spinner=False)
def _fixed_table(run_dir: str, started, table: str) -> pd.Series | pd.DataFrame | None:
    """Tables a trainer writes once when it starts (samples, ground truth), cached per run start:
    re-reading and re-joining them on every 2-second refresh would cost more than the charts."""
    reader = RunReader(run_dir)
    samples = reader.samples("train")
    if not len(samples):
        raise _NotYetWritten(table)
    if table == "names":
        return samples["name"]
    truth = reader.groundtruth()
    if truth is None:
        raise _NotYetWritten(table)
    try:
        return analysis.match_groundtruth(samples, truth)
    except ValueError:
        return None  # ground truth of another dataset (or of other images): nothing to score


def _fixed(reader: RunReader, table: str):
    try:
        return _fixed_table(str(reader.run_dir), reader.status()["started"], table)
    except _NotYetWritten:
        return None


def sample_names(reader: RunReader) -> pd.Series:
    """Training sample names by idx (empty until the trainer has recorded them)."""
    names = _fixed(reader, "names")
    return pd.Series(dtype=object) if names is None else names


def ground_truth(reader: RunReader) -> pd.DataFrame | None:
    """The benchmark's truth for the training samples (idx -> true_label, is_noisy, degradation)."""
    return _fixed(reader, "truth")


def noise_model_caption(truth: pd.DataFrame) -> None:
    """One line on how the run's training labels went wrong: the benchmark's noise model, the share
    of wrong labels the run started from and the share of ambiguous faces."""
    models = truth["noise_model"].dropna().unique().tolist() if "noise_model" in truth else []
    model = f"**{models[0]}** label noise" if len(models) == 1 else "label noise of an unrecorded model"
    ambiguous = truth["ambiguity"].dropna()
    share = (f"; {(ambiguous >= AMBIGUOUS).mean():.0%} of the faces are ambiguous (a reference annotator "
             f"would name another class more often than not: ambiguity ≥ {AMBIGUOUS})" if len(ambiguous) else "")
    st.caption(f"Ground truth: {model}; the run started with {truth['is_noisy'].mean():.0%} of its "
               f"training labels wrong{share}.")


def images_root(reader: RunReader) -> Path | None:
    """The run's dataset folder when its images can be read here; otherwise says why not, plainly."""
    # The built-in benchmark lives in a cache the trainer records; a user's dataset is config['data'].
    data = reader.config().get("data") or (reader.meta("dataset") or {}).get("path")
    if not data:
        st.info("This run does not record where its images are, so no thumbnails can be shown.")
        return None
    if not Path(data).expanduser().is_dir():
        st.warning(f"The images of this run are not reachable: {data} does not exist here "
                   "(the run folder or the dataset was moved).")
        return None
    return Path(data).expanduser()


def sample_thumbnails(reader: RunReader, names, *, size: int = 96) -> list | None:
    """JPEG bytes (None where unreadable) of training samples `names`; None, with a message, when
    the run's images are not reachable at all."""
    root = images_root(reader)
    if root is None:
        return None
    fmt = reader.config().get("format", "rafdb")
    return [thumbnails.thumbnail(thumbnails.image_path(data=root, format=fmt, name=n), size=size)
            for n in names]


def sample_params(reader: RunReader, idx: int, *, split: str = "train", epoch: int | None = None) -> dict:
    """The Sample page's query parameters for one sample of `reader` (an epoch for test samples)."""
    params = {"run": reader.name, "split": split, "sample": str(int(idx))}
    return params | ({"epoch": str(int(epoch))} if epoch is not None else {})


def sample_url(reader: RunReader, idx: int, **where) -> str:
    """A link to the Sample page (relative, so it works under any host and base path)."""
    return f"{SAMPLE_PAGE_PATH}?{urlencode(sample_params(reader, idx, **where))}"


def gallery(reader: RunReader, names, captions, *, samples, split: str = "train", epoch: int | None = None,
            size: int = 96, per_row: int = 6) -> None:
    """Thumbnails of `names` (sample indices `samples` of `split`), each captioned with a link that
    opens the sample on the Sample page."""
    shots = sample_thumbnails(reader, names, size=size)
    if shots is None:
        return
    found = [(shot, caption, idx) for shot, caption, idx in zip(shots, captions, samples) if shot is not None]
    for start in range(0, len(found), per_row):
        for column, (shot, caption, idx) in zip(st.columns(per_row), found[start:start + per_row]):
            with column:
                st.image(shot, width=size)
                st.page_link(SAMPLE_PAGE, label=caption, query_params=sample_params(
                    reader, idx, split=split, epoch=epoch))
    if len(found) < len(names):
        st.caption(f"{len(names) - len(found)} image(s) could not be read from {images_root(reader)}.")
