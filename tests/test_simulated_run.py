"""bench/simulated_run.py records a run the way the trainer does: checked against real trained runs."""
import numpy as np

from bench.simulated_run import write_dataset, write_simulated_run
from scn.store import RunReader


def test_a_simulated_run_is_recorded_like_a_trained_one(tmp_path, trained_runs):
    data = write_dataset(tmp_path / "data", train=40, test=14)
    for method in ("scn", "baseline"):
        write_simulated_run(tmp_path / method, data_dir=data, method=method, epochs=4)
        simulated, real = RunReader(tmp_path / method), RunReader(trained_runs[method])
        assert set(simulated.config()) == set(real.config())
        assert simulated.config()["method_label"] == real.config()["method_label"]
        assert simulated.train_config().method == method
        assert list(simulated.epoch_metrics().columns) == list(real.epoch_metrics().columns)
        assert list(simulated.step_metrics().columns) == list(real.step_metrics().columns)
        for reader in (simulated, real):
            assert reader.epoch_metrics()["rr_active_share"].notna().all() == (method == "scn")
        assert simulated.attention_epochs() == real.attention_epochs() == [1, 2, 3, 4]
        assert set(simulated.meta("dataset")) == set(real.meta("dataset"))
        assert simulated.groundtruth() is not None and real.groundtruth() is not None
        assert simulated.status()["state"] == real.status()["state"] == "finished"
        for reader in (simulated, real):
            alpha = reader.attention(4)["alpha"].to_numpy()
            assert np.all(alpha == 1.0) == (method == "baseline")
            assert reader.attention(4)["pred"].ge(0).all() and reader.attention(4)["p_given"].notna().all()
            predictions = reader.predictions(4)
            assert list(predictions.columns) == ["idx", "name", "label", "pred"] + reader.class_names()
            cells = np.zeros_like(reader.confusion(4))
            np.add.at(cells, (predictions["label"], predictions["pred"]), 1)
            assert cells.tolist() == reader.confusion(4).tolist()
            assert reader.epoch_metrics()[["train_accuracy_original", "train_accuracy_truth"]].notna().all().all()
    assert len(RunReader(tmp_path / "scn").relabels()) > 0
