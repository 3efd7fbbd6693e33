"""The verdict on runs trained side by side, from the session's real SCN and baseline runs."""
import math

import pytest

from scn import comparison
from scn.store import RunReader, list_runs
from tests.helpers import copy_run
from tests.test_app_pages import render, texts


def selected_and_last(run_dir) -> tuple:
    epochs = RunReader(run_dir).epoch_metrics()
    return epochs.loc[epochs["val_accuracy"].idxmax(), "test_accuracy"], epochs["test_accuracy"].iloc[-1]


def test_one_run_a_side_gives_the_difference_without_a_spread(trained_runs):
    baseline, scn = RunReader(trained_runs["baseline"]), RunReader(trained_runs["scn"])
    table = comparison.compare({"Baseline": [baseline], "SCN": [scn]}).set_index("figure")
    selected = comparison.FIGURES["selected_accuracy"]
    (b_selected, b_last), (s_selected, s_last) = map(selected_and_last, trained_runs.values())
    assert table.at[selected, "Baseline"] == pytest.approx(b_selected)
    assert table.at[selected, "difference"] == pytest.approx(s_selected - b_selected)
    assert table.at[comparison.FIGURES["last_accuracy"], "SCN"] == pytest.approx(s_last)
    assert math.isnan(table.at[selected, "spread"])
    # SCN's own figures: the baseline neither relabels nor has alpha.
    precision = comparison.FIGURES["relabel_precision"]
    events = scn.relabels(kind="scn")
    assert math.isnan(table.at[precision, "Baseline"]) and 0 <= table.at[precision, "SCN"] <= 1 and len(events)
    assert 0 <= table.at[comparison.FIGURES["alpha_auroc"], "SCN"] <= 1
    assert "no seed spread" in comparison.verdict(table.reset_index())


def test_several_seeds_give_the_difference_a_spread(trained_runs, tmp_path):
    twice = {label: [RunReader(trained_runs[key]), RunReader(copy_run(trained_runs[key], tmp_path, name=f"{key}-2"))]
             for label, key in (("Baseline", "baseline"), ("SCN", "scn"))}
    table = comparison.compare(twice).set_index("figure")
    assert table["runs"].eq("2 vs 2").all()
    assert table.at[comparison.FIGURES["last_accuracy"], "spread"] == 0  # identical copies
    verdict = comparison.verdict(table.reset_index())
    assert verdict.endswith("the seeds' spread (0.0 points SD).")


def test_runs_that_differ_only_in_their_seed_are_one_setup():
    base = {"method": "scn", "method_label": "SCN", "lr": 0.001, "seed": 0, "threads": 1}
    groups = comparison.setups({"a": base, "b": base | {"seed": 1, "threads": 2},
                                "c": base | {"method": "baseline", "method_label": "Baseline"}})
    assert groups == {"SCN": ["a", "b"], "Baseline": ["c"]}


def test_the_home_page_shows_the_demo_verdict_and_compare_any_two_setups(empty_root, trained_runs):
    for key in ("baseline", "scn"):
        copy_run(trained_runs[key], empty_root, name=f"20260101-120000-demo-{key}")
    assert comparison.demo_pair(list_runs()) == {"Baseline": "20260101-120000-demo-baseline",
                                                 "SCN": "20260101-120000-demo-scn"}
    at = render()
    assert "ahead of" in texts(at.markdown)
    card = [d.value for d in at.dataframe if "figure" in d.value.columns][0]
    assert list(card.columns) == ["figure", "Baseline", "SCN", "difference", "seeds' spread (SD)"]
    assert card["SCN"].str.endswith("%").iloc[0] and "None" not in card.to_string()
    at = render("pages/5_Compare.py")
    # The fixture's SCN run relabels the low group, which its preset does not: its label says so.
    assert at.selectbox(key="verdict_first").value.split(" (")[0] in ("Baseline", "SCN")
    assert "ahead of" in texts(at.markdown)


def test_a_demo_that_has_only_started_has_no_verdict_yet(empty_root):
    from scn.store import RunWriter

    for key in ("baseline", "scn"):
        writer = RunWriter(empty_root / f"20260101-120000-demo-{key}")
        writer.write_config({"method": key, "epochs": 12})
        writer.set_status("starting", started=1.0)
        writer.close()
    table = comparison.compare({label: [RunReader(empty_root / f"20260101-120000-demo-{key}")]
                                for label, key in (("Baseline", "baseline"), ("SCN", "scn"))})
    assert table.empty and comparison.verdict(table) == "No test accuracy to compare yet."
    at = render()
    assert "No test accuracy to compare yet" in texts(at.info)
