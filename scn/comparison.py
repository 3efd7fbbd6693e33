"""A verdict for runs trained side by side (SCN against the baseline, say): per setup, the test
accuracy of the checkpoint chosen on validation and of the last one, how often its relabels were
right and how well low alpha points at wrong labels (both where the ground truth is known), and
the difference between the two setups, set against the spread of their seeds when a setup was
trained with several.

    table = comparison.compare({"Baseline": [baseline], "SCN": [scn_a, scn_b]})

Runs of one setup differ only in options that do not change what is trained (SETUP_FREE), so
`setups` groups any runs into setups that way.
"""
import numpy as np
import pandas as pd

from scn import metrics

FIGURES = {
    "selected_accuracy": "test accuracy, checkpoint chosen on validation",
    "last_accuracy": "test accuracy, last checkpoint",
    "relabel_precision": "relabel precision (new label is the true class)",
    "alpha_auroc": "alpha AUROC against the labels wrong at the last epoch",
}
# Options that do not change what a run learns, beside its seed: runs that differ only in these
# are seeds of one setup.
SETUP_FREE = {"seed", "threads", "device", "processes", "log_every", "precision", "decoded_cache",
              "channels_last", "dataset_description", "method_label"}


def run_figures(reader) -> dict:
    """FIGURES of one run (NaN where it has none: no validation split, no relabel, no ground truth)."""
    epochs = reader.epoch_metrics()
    figures = dict.fromkeys(FIGURES, float("nan"))
    if not len(epochs):
        return figures
    figures["last_accuracy"] = float(epochs["test_accuracy"].iloc[-1])
    if epochs["val_accuracy"].notna().any():
        # The first epoch at the best validation accuracy: the one the trainer keeps as "best".
        figures["selected_accuracy"] = float(epochs.loc[epochs["val_accuracy"].idxmax(), "test_accuracy"])
    if reader.config().get("method") == "scn":
        scores = metrics.run_scores(reader)
        if scores is not None and len(scores):
            relabels = scores["relabels"].sum()
            figures["relabel_precision"] = scores["correct"].sum() / relabels if relabels else float("nan")
            if "auroc_wrong_now" in scores:
                figures["alpha_auroc"] = float(scores["auroc_wrong_now"].iloc[-1])
    return figures


def compare(groups: dict) -> pd.DataFrame:
    """One row per figure: for each of the two setups in `groups` (name -> its runs' readers) the
    mean over its runs and the standard deviation across them (NaN for one run), then `difference`
    (second setup minus first) and `spread`, the seeds' standard deviation pooled over both setups
    (NaN unless each setup has at least two runs). Rows that no run has are left out."""
    if len(groups) != 2:
        raise ValueError(f"a comparison needs two setups, not {len(groups)}")
    values = {name: pd.DataFrame([run_figures(reader) for reader in readers], columns=list(FIGURES))
              for name, readers in groups.items()}
    (first, a), (second, b) = values.items()
    table = pd.DataFrame({
        "figure": list(FIGURES.values()),
        f"{first}": a.mean().to_numpy(), f"{first} sd": a.std(ddof=1).to_numpy(),
        f"{second}": b.mean().to_numpy(), f"{second} sd": b.std(ddof=1).to_numpy(),
    })
    table["difference"] = table[second] - table[first]
    table["spread"] = np.sqrt((table[f"{first} sd"] ** 2 + table[f"{second} sd"] ** 2) / 2)
    table["runs"] = f"{len(a)} vs {len(b)}"
    return table[table[[first, second]].notna().any(axis=1)].reset_index(drop=True)


def verdict(table: pd.DataFrame) -> str:
    """One sentence on the headline figure (accuracy of the checkpoint chosen on validation, else
    of the last one): which setup is ahead, by how much, and whether that exceeds the seeds' spread."""
    first, second = table.columns[1], table.columns[3]
    rows = table.set_index("figure")
    for key in ("selected_accuracy", "last_accuracy"):
        if FIGURES[key] in rows.index and pd.notna(rows.at[FIGURES[key], "difference"]):
            row = rows.loc[FIGURES[key]]
            break
    else:
        return "No test accuracy to compare yet."
    ahead, behind = (second, first) if row["difference"] >= 0 else (first, second)
    points = abs(row["difference"]) * 100
    sentence = f"{ahead} is ahead of {behind} by {points:.1f} points of {row.name}"
    if pd.isna(row["spread"]):
        return sentence + " (one run each: no seed spread to weigh it against)."
    within = "within" if abs(row["difference"]) <= row["spread"] else "beyond"
    return sentence + f", {within} the seeds' spread ({row['spread'] * 100:.1f} points SD)."


def setups(configs: dict) -> dict:
    """Runs (name -> config.json) grouped into setups, in first-seen order: a setup is named by its
    first run's method label and holds the names of the runs that differ from it only in SETUP_FREE."""
    groups, keys = {}, {}
    for name, config in configs.items():
        key = tuple(sorted((k, repr(v)) for k, v in config.items() if k not in SETUP_FREE))
        if key not in keys:
            label = config.get("method_label") or config.get("method") or name
            keys[key] = label if label not in groups else f"{label} ({name})"
            groups[keys[key]] = []
        groups[keys[key]].append(name)
    return groups


def demo_pair(table: pd.DataFrame) -> dict | None:
    """The newest one-click demo's runs ({"Baseline": name, "SCN": name}) from list_runs's table,
    or None before both have been started."""
    names = table["name"].tolist()
    newest = {label: next((n for n in names if n.endswith(f"-demo-{suffix}")), None)
              for label, suffix in (("Baseline", "baseline"), ("SCN", "scn"))}
    return newest if all(newest.values()) else None
