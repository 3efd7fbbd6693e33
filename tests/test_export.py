import io

import numpy as np
import pandas as pd
import pytest

from scn.export import COLUMNS, sample_csv, sample_table
from scn.store import AppWriter, RunReader


def test_one_row_per_training_sample_with_labels_alpha_and_reviews(run_dir):
    reader = RunReader(run_dir)
    events = reader.relabels()
    latest = events.sort_values("id").groupby("idx").last()
    kept, reverted = int(latest.index[0]), int(latest.index[1])
    AppWriter(reader.run_dir).write_review(event_id=int(latest.at[kept, "id"]), decision="accept")
    AppWriter(reader.run_dir).write_review(event_id=int(latest.at[reverted, "id"]), decision="revert")
    table = pd.read_csv(io.StringIO(sample_csv(reader)), keep_default_na=False)
    names, samples = reader.class_names(), reader.samples("train")
    assert table.columns.tolist() == COLUMNS and table["image"].tolist() == samples["name"].tolist()
    original = reader.original_labels()
    assert table["original_label"].tolist() == [names[c] for c in original]
    assert table.at[kept, "final_label"] == table.at[kept, "reviewed_label"] == names[latest.at[kept, "new"]]
    assert table.at[reverted, "final_label"] == names[latest.at[reverted, "new"]]
    assert table.at[reverted, "reviewed_label"] == names[original[reverted]]
    assert (table["reviewed_label"] != "").sum() == 2
    untouched = [i for i in range(len(samples)) if i not in latest.index]
    # An image reviewed by its final label (no relabel event reviewed) is exported at that label.
    AppWriter(reader.run_dir).write_image_reviews(labels={untouched[0]: 3}, decision="set")
    again = pd.read_csv(io.StringIO(sample_csv(reader)), keep_default_na=False)
    assert again.at[untouched[0], "reviewed_label"] == names[3] and (again["reviewed_label"] != "").sum() == 3
    assert (table.loc[untouched, "final_label"] == table.loc[untouched, "original_label"]).all()
    assert table["relabel_count"].tolist() == [int((events["idx"] == i).sum()) for i in range(len(samples))]
    last = reader.attention()
    assert table["last_alpha"].to_numpy(float) == pytest.approx(last["alpha"], abs=1e-4)
    assert table["last_p_given"].to_numpy(float) == pytest.approx(last["p_given"], abs=1e-4)
    _, alpha, _ = reader.attention_matrix()
    assert table["mean_alpha"].to_numpy(float) == pytest.approx(alpha.mean(0), abs=1e-4)


def test_a_run_without_epochs_exports_its_samples_with_empty_values(tmp_path):
    from scn.store import RunWriter

    writer = RunWriter(tmp_path / "r")
    writer.write_config({"class_names": ["a", "b"]})
    writer.add_samples("train", ["x.jpg", "y.jpg"], [1, 0])
    writer.close()
    table = sample_table(RunReader(tmp_path / "r"))
    assert table["original_label"].tolist() == table["final_label"].tolist() == ["b", "a"]
    assert table[["last_alpha", "mean_alpha", "last_p_given"]].isna().all().all()
    assert table["relabel_count"].tolist() == [0, 0] and table["reviewed_label"].tolist() == ["", ""]


def test_mean_alpha_skips_epochs_that_did_not_reach_a_sample(tmp_path):
    from scn.store import RunWriter

    writer = RunWriter(tmp_path / "r")
    writer.write_config({"class_names": ["a", "b"]})
    writer.add_samples("train", ["x.jpg", "y.jpg"], [1, 0])
    writer.log_attention(1, alpha=[0.2, np.nan], is_high=[1, 0], labels=[1, 0])
    writer.log_attention(2, alpha=[0.4, np.nan], is_high=[1, 0], labels=[1, 0])
    writer.close()
    table = sample_table(RunReader(tmp_path / "r"))
    assert table["mean_alpha"].iloc[0] == pytest.approx(0.3) and np.isnan(table["mean_alpha"].iloc[1])
