"""Runs overlaid: accuracy and loss curves and a final-metrics table (last epoch and the epoch
chosen on validation, reported separately: choosing on the test set would flatter every run), and
the options on which the runs differ."""
import pandas as pd
import streamlit as st

from studio import ui
from scn import charts, comparison
from scn.config import config_diff
from scn.selection import BY_VALIDATION, selected_epoch
from scn.store import list_runs, runs_root

# (column, title, y axis, percent)
CURVES = (("test_accuracy", "Test accuracy", "accuracy", True),
          ("train_accuracy", "Train accuracy (on current labels)", "accuracy", True),
          ("train_loss", "Train loss", "loss", False), ("test_loss", "Test loss", "loss", False))

ui.page("Compare runs")


METRIC_COLUMNS = ("last test acc.", "best val acc.", "epoch (best val)", "test acc. at best val", "epochs")


def final_metrics(name: str, epochs: pd.DataFrame, summary: pd.Series) -> dict:
    """The run's figures first, then what it is (long text last, so the numbers stay on screen)."""
    row = dict.fromkeys(METRIC_COLUMNS, float("nan")) | {"epochs": len(epochs)}
    if len(epochs):
        row |= {"last test acc.": epochs["test_accuracy"].iloc[-1]}
    chosen = selected_epoch(epochs)
    if chosen is not None and chosen["by"] == BY_VALIDATION:
        row |= {"best val acc.": chosen["val_accuracy"], "epoch (best val)": chosen["epoch"],
                "test acc. at best val": chosen["test_accuracy"]}
    return {"run": name} | row | {"status": summary["status"], "method": summary["method"] or "",
                                  "dataset": summary["dataset"] or ""}


def compare(readers: list, table: pd.DataFrame) -> None:
    curves, rows, options = {}, [], {}
    for reader in readers:
        with ui.run_guard(reader):
            options[reader.name] = reader.train_config()
            curves[reader.name] = reader.epoch_metrics()
            rows.append(final_metrics(reader.name, curves[reader.name],
                                      table.set_index("name").loc[reader.name]))
    if not curves:
        return
    # As text, so that a figure a run lacks (no validation split, no epoch yet) is blank, not "None".
    table = pd.DataFrame(rows)
    for column in ("last test acc.", "best val acc.", "test acc. at best val"):
        table[column] = ui.blank_missing(table[column], "{:.1%}")
    table["epoch (best val)"] = ui.blank_missing(table["epoch (best val)"], "{:.0f}")
    st.dataframe(table, hide_index=True, width="stretch")
    relabel = {name: o.relabel_start for name, o in options.items() if o.relabel_start is not None}
    colors, total = ui.run_colors(), max(o.epochs for o in options.values())
    columns = st.columns(2)
    for i, (column, title, y, is_percent) in enumerate(CURVES):
        with columns[i % 2]:
            ui.plotly(charts.compare_figure(curves, column=column, title=title, y=y, colors=colors,
                                            percent=is_percent, total_epochs=total,
                                            relabel_epochs=relabel))


def verdict(readers: list) -> None:
    """The comparison card (scn.comparison) of two setups among the chosen runs: runs that differ
    only in their seed are one setup, so several seeds of each give the difference its spread."""
    st.subheader("Verdict")
    configs = {}
    for reader in readers:
        with ui.run_guard(reader):
            configs[reader.name] = reader.config()
    groups = comparison.setups(configs)
    if len(groups) < 2:
        st.info("Choose runs of two setups (e.g. SCN and the baseline, with one or more seeds each) "
                "for a verdict.")
        return
    names = list(groups)
    left, right = st.columns(2)
    first = left.selectbox("Setup", names, index=0, key="verdict_first",
                           format_func=lambda n: f"{n} ({len(groups[n])} run(s))")
    second = right.selectbox("against", [n for n in names if n != first], index=0, key="verdict_second",
                             format_func=lambda n: f"{n} ({len(groups[n])} run(s))")
    by_name = {reader.name: reader for reader in readers}
    ui.comparison_card({first: [by_name[n] for n in groups[first]], second: [by_name[n] for n in groups[second]]})


def differences(readers: list) -> None:
    """The options on which the chosen runs differ (config.json), one column per run."""
    st.subheader("Options that differ")
    if len(readers) < 2:
        st.info("Choose two or more runs to see the options on which they differ.")
        return
    configs = {}
    for reader in readers:
        with ui.run_guard(reader):
            configs[reader.name] = reader.config()
    if len(configs) < 2:
        return
    table = config_diff(configs)
    if table.empty:
        st.info("The chosen runs were started with the same options.")
    else:
        st.dataframe(table, hide_index=True, width="stretch")


table = list_runs()
if not len(table):
    ui.no_runs_message()
else:
    names = table["name"].tolist()
    chosen = st.multiselect("Runs", names, default=names[: min(4, len(names))], key="compare_runs")
    if chosen:
        readers = [r for r in map(ui.open_run, chosen) if r is not None]
        ui.live(compare, readers, table, readers=readers)
        verdict(readers)
        differences(readers)
    else:
        st.info(f"Choose runs to compare ({len(names)} in {runs_root()}).")
