"""How good are SCN's relabels? Scored against the built-in benchmark's ground truth, beside
cleanlab's `find_label_issues` on out-of-fold predicted probabilities of the baseline.

SCN: the relabel events of the noise grid's SCN runs at the highest noise level (trained by
bench.noise_robustness if they are not in --runs-dir yet), or of the finished runs named by
--scn-runs (e.g. the demo's SCN runs of bench.standing_start).
cleanlab: the baseline trained k times, each time without one fold of the training images; the
held-out fold's predicted probabilities feed `cleanlab.filter.find_label_issues`, and each flagged
label is "relabeled" to the predicted class, so both methods are scored alike. Both are scored on
the same samples, and so the same wrong labels: each SCN run's training split (without the
validation images that run held out, which depend on its seed), cleanlab once per SCN run:

  precision  share of changed labels whose new label is the true class
  recall     share of noisy labels that end up with their true class
  damage     clean labels that end up wrong
  detection  flagged/relabeled samples versus truly noisy ones (precision, recall)

The folds start from the grid's start (its shared pretrained weights, or synth-face with
--synth-face), like every grid run, so both methods see the same model quality.

    python -m bench.relabel_quality                      # the expression-start table (after the grid)
    python -m bench.relabel_quality --synth-face --alpha-normalize --margin2 0.7 --train 4000 --test 1000 \\
        --relabel-epoch 6 --runs-dir RUNS --json bench/results/relabel_quality_synth_face.json   # the demo's SCN
    python -m bench.relabel_quality --train 60 --test 21 --image-size 32 --epochs 1 --folds 2 \\
        --seeds 0 --pretrain-train 60 --pretrain-epochs 1 --runs-dir /tmp/grid --json /tmp/relabel.json
"""
import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.results_io import write_results
from bench import noise_robustness as grid
from scn.augment import normalize
from scn.checkpoint import load_model
from scn.data import RAFDB_LABEL_FILE, decode_image, rafdb_image_path, read_label_file
from scn.metrics import auroc, run_scores, truth_table
from scn.store import RunReader, checkpoint_path


def write_fold(data: Path, fold_dir: Path, *, keep: set) -> Path:
    """A RAF-DB folder that shares `data`'s images but lists only the kept training images."""
    fold_dir.mkdir(parents=True, exist_ok=True)
    if not (fold_dir / "Image").exists():
        (fold_dir / "Image").symlink_to((data / "Image").resolve())
    lines = [line for line in (data / RAFDB_LABEL_FILE).read_text().splitlines()
             if line.split()[0] in keep or line.startswith("test")]
    (fold_dir / RAFDB_LABEL_FILE).parent.mkdir(exist_ok=True)
    (fold_dir / RAFDB_LABEL_FILE).write_text("\n".join(lines) + "\n")
    return fold_dir


@torch.no_grad()
def predict_probs(checkpoint: Path, data: Path, names: list) -> np.ndarray:
    model, meta = load_model(checkpoint)
    config = meta["model_config"]
    images = torch.from_numpy(np.stack([decode_image(rafdb_image_path(data, n), size=config["image_size"])
                                        for n in names]))
    probs = [torch.softmax(model(normalize(images[i:i + 256], mean=config["mean"], std=config["std"]))[1], 1)
             for i in range(0, len(images), 256)]
    return torch.cat(probs).numpy()


def out_of_fold_probs(data: Path, names: list, args) -> np.ndarray:
    order = np.random.default_rng(args.fold_seed).permutation(len(names))
    folds = np.array_split(order, args.folds)

    def train_fold(k: int) -> Path:
        held = {names[i] for i in folds[k]}
        fold_data = write_fold(data, Path(args.runs_dir) / f"cleanlab-fold{k}-data",
                               keep={n for n in names if n not in held})
        job = {"noise": args.top_noise, "variant": "baseline", "seed": 0,
               "name": f"cleanlab-noise{args.top_noise:g}-fold{k}of{args.folds}"}
        grid.run_job(job, fold_data, args)
        return checkpoint_path(Path(args.runs_dir) / job["name"], "last")

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        checkpoints = list(pool.map(train_fold, range(args.folds)))
    probs = np.zeros((len(names), 7))
    for held_out, checkpoint in zip(folds, checkpoints):
        probs[held_out] = predict_probs(checkpoint, data, [names[i] for i in held_out])
    return probs


def scores(*, given, true, changed_to) -> dict:
    """Score a final labelling `changed_to` (-1 = unchanged) against the truth."""
    given, true, changed_to = map(np.asarray, (given, true, changed_to))
    changed = changed_to >= 0
    final = np.where(changed, changed_to, given)
    noisy = given != true
    return {
        "samples": int(len(given)), "wrong_labels": int(noisy.sum()),
        "changed": int(changed.sum()),
        "precision": float((final[changed] == true[changed]).mean()) if changed.any() else None,
        "recall": float((final[noisy] == true[noisy]).mean()),
        "damage": int(((final != true) & ~noisy).sum()),
        "detection_precision": float(noisy[changed].mean()) if changed.any() else None,
        "detection_recall": float(changed[noisy].mean()),
    }


def scn_run_dirs(args, data: Path) -> list:
    """The SCN runs to score: --scn-runs as given, else the grid's at the top noise level (trained here
    if need be)."""
    if args.scn_runs:
        return [Path(d) for d in args.scn_runs]
    jobs = [grid.grid_job(noise=args.top_noise, variant="scn", seed=seed, noise_model=args.noise_model) for seed in args.seeds]
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        list(pool.map(lambda job: grid.run_job(job, data, args), jobs))
    return [Path(args.runs_dir) / job["name"] for job in jobs]


def scn_side(run_dirs: list) -> list:
    rows = []
    for run_dir in run_dirs:
        reader = RunReader(run_dir)
        if reader.status()["state"] != "finished":
            raise SystemExit(f"{run_dir}: not a finished run")
        seed = reader.config()["seed"]
        truth = truth_table(reader.samples("train"), reader.groundtruth())
        events = reader.relabels()
        final = np.full(len(truth), -1)
        for idx, new in zip(events["idx"], events["new"]):
            final[idx] = new
        final[final == truth["label"].to_numpy()] = -1  # relabeled back to where it started
        # Epoch by epoch: relabel quality and alpha's AUROCs (scn.metrics.run_scores, as the app shows them).
        by_epoch = run_scores(reader)
        per_epoch = by_epoch.drop(columns=["alpha_auroc", "wrong_now", "auroc_wrong_now", "auroc_ambiguous"])
        rows.append({"run": str(run_dir), "seed": seed, "names": truth["name"].tolist(),
                     **scores(given=truth["label"], true=truth["true_label"], changed_to=final),
                     "events": int(len(events)),
                     "event_precision": float((events["new"].to_numpy() == truth["true_label"].to_numpy()[
                         events["idx"].to_numpy()]).mean()) if len(events) else None,
                     "per_epoch": per_epoch.to_dict(orient="records"),
                     "alpha_auroc_by_epoch": by_epoch["alpha_auroc"].tolist(),
                     "alpha_auroc_wrong_now_by_epoch": [grid.optional_float(v)
                                                        for v in by_epoch["auroc_wrong_now"]],
                     "alpha_auroc_subtle_by_epoch": alpha_auroc(reader, truth["intensity"] < SUBTLE)})
    return rows


# The calibration's hardest intensity slice: faces whose expression is barely there.
SUBTLE = 0.35


def alpha_auroc(reader: RunReader, positives) -> list:
    """Per epoch, how well a low attention weight picks out `positives` (0.5: not at all)."""
    return [auroc(-reader.attention(e)["alpha"].to_numpy(), np.asarray(positives))
            for e in reader.attention_epochs()]


def cleanlab_side(args, data: Path) -> pd.DataFrame:
    """cleanlab's verdict on every training image of `data`: name, given and true label, and the
    class it changes the label to (-1: kept)."""
    from cleanlab.filter import find_label_issues

    labels = read_label_file(data / RAFDB_LABEL_FILE)
    names = sorted(n for n in labels if n.startswith("train"))
    given = np.array([labels[n] for n in names])
    truth = truth_table(pd.DataFrame({"idx": range(len(names)), "name": names, "label": given}),
                        pd.read_csv(data / "groundtruth.csv"))
    probs = out_of_fold_probs(data, names, args)
    # n_jobs=1: by default cleanlab forks a process pool, and a fork of this process (torch's and
    # tqdm's threads running) can leave a worker waiting forever on a lock held at the fork.
    issues = find_label_issues(labels=given, pred_probs=probs, n_jobs=1)
    changed_to = np.where(issues, probs.argmax(1), -1)
    changed_to[changed_to == given] = -1
    return pd.DataFrame({"name": names, "given": given, "true": truth["true_label"], "changed_to": changed_to})


def cleanlab_on(verdicts: pd.DataFrame, names: list) -> dict:
    """cleanlab's verdicts scored on `names` only (one SCN run's training samples)."""
    rows = verdicts.set_index("name").loc[names]
    return scores(given=rows["given"], true=rows["true"], changed_to=rows["changed_to"])


def mean(rows: list, key: str):
    values = [r[key] for r in rows if r[key] is not None]
    return float(np.mean(values)) if values else None


def markdown(scn_rows: list, cleanlab: dict) -> str:
    def pct(v):
        return "–" if v is None else f"{v:.1%}"

    lines = ["| method | samples (wrong labels) | labels changed | precision | recall (noisy fixed) "
             "| damage (clean broken) | detection precision | detection recall |", "|---|---|---|---|---|---|---|---|"]
    for name, rows in ((f"SCN relabeling (mean of {len(scn_rows)} seeds)", scn_rows),
                       (f"cleanlab find_label_issues ({cleanlab['folds']}-fold baseline)", cleanlab["per_scn_run"])):
        lines.append(f"| {name} | {mean(rows, 'samples'):.0f} ({mean(rows, 'wrong_labels'):.0f}) "
                     f"| {mean(rows, 'changed'):.0f} | {pct(mean(rows, 'precision'))} | {pct(mean(rows, 'recall'))} "
                     f"| {mean(rows, 'damage'):.0f} | {pct(mean(rows, 'detection_precision'))} "
                     f"| {pct(mean(rows, 'detection_recall'))} |")
    return "\n".join(lines)


def per_epoch_markdown(scn_rows: list, report: dict) -> str:
    """SCN's relabels epoch by epoch, averaged over seeds, with the attention AUROCs."""
    frames = [pd.DataFrame(r["per_epoch"]) for r in scn_rows]
    mean_rows = pd.concat(frames).groupby("epoch").mean(numeric_only=True).reset_index()
    lines = ["| epoch | relabels | precision | recall (noisy fixed so far) | clean labels broken so far "
             "| AUROC low α → noisy label | AUROC low α → label wrong now | AUROC low α → subtle expression |",
             "|---|---|---|---|---|---|---|---|"]
    for i, row in mean_rows.iterrows():
        precision = "–" if np.isnan(row["precision"]) else f"{row['precision']:.1%}"
        lines.append(f"| {int(row['epoch'])} | {row['relabels']:.0f} | {precision} | {row['recall']:.1%} "
                     f"| {row['clean_broken']:.0f} | {report['alpha_auroc_by_epoch_mean'][i]:.3f} "
                     f"| {report['alpha_auroc_wrong_now_by_epoch_mean'][i]:.3f} "
                     f"| {report['alpha_auroc_subtle_by_epoch_mean'][i]:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    grid.add_scale_arguments(parser)
    parser.add_argument("--top-noise", type=float, default=0.3)
    parser.add_argument("--scn-runs", nargs="+", help="finished SCN run folders to score instead of the grid's")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--fold-seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="runs trained at once")
    parser.add_argument("--json", default="bench/results/relabel_quality.json")
    args = parser.parse_args(argv)
    args.noise = [args.top_noise]
    data = grid.prepare(args, [args.top_noise])[args.top_noise]
    scn_rows = scn_side(scn_run_dirs(args, data))
    verdicts = cleanlab_side(args, data)
    per_run = [{"seed": row["seed"], **cleanlab_on(verdicts, row.pop("names"))} for row in scn_rows]
    cleanlab = {"folds": args.folds, "flagged_of_all_training_images": int((verdicts["changed_to"] >= 0).sum()),
                "per_scn_run": per_run} | {key: mean(per_run, key) for key in per_run[0] if key != "seed"}
    report = {"noise": args.top_noise, "scn": scn_rows, "cleanlab": cleanlab,
              "scale": {k: getattr(args, k) for k in ("train", "test", "epochs", "relabel_epoch", "margin2",
                                                      "alpha_normalize", "synth_face", "folds")}}
    for key in ("alpha_auroc_by_epoch", "alpha_auroc_wrong_now_by_epoch", "alpha_auroc_subtle_by_epoch"):
        report[f"{key}_mean"] = np.nanmean(np.array([r[key] for r in scn_rows], dtype=float), axis=0).tolist()
    write_results(args.json, report, module="bench.relabel_quality", argv=argv)
    print(markdown(scn_rows, cleanlab))
    print()
    print(per_epoch_markdown(scn_rows, report))


if __name__ == "__main__":
    main()
