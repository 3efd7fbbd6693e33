import numpy as np

from scn.store import RunReader


def test_attention_matrix_stacks_every_epoch(finished_runs):
    reader = RunReader(finished_runs["scn_dir"])
    epochs, alpha, is_high = reader.attention_matrix()
    assert epochs == [1, 2, 3, 4]
    assert alpha.shape == is_high.shape == (4, len(reader.samples("train")))
    np.testing.assert_array_equal(alpha[2], reader.attention(3)["alpha"].to_numpy())
    np.testing.assert_array_equal(is_high[2], reader.attention(3)["is_high"].to_numpy())


def test_attention_matrix_of_a_run_without_epochs(tmp_path):
    from scn.store import RunWriter
    RunWriter(tmp_path / "r").close()
    epochs, alpha, _ = RunReader(tmp_path / "r").attention_matrix()
    assert epochs == [] and alpha.shape == (0, 0)
