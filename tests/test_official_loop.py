"""bench.official_loop: the clock, the patches, and (where their code has been copied into the ignored
official-scn/ folder, `python -m bench.official_loop prepare`) their loop timed on the CPU at toy
scale on the built-in benchmark's RAF-DB layout."""
import json

import pytest
import torch

from bench import official_loop
from bench.official_loop import OfficialLoopError, StepClock
from scn.synth.dataset import generate_dataset

needs_their_code = pytest.mark.skipif(not (official_loop.FOLDER / "src" / "train.py").is_file(),
                                      reason="official-scn/ is absent (python -m bench.official_loop prepare)")


def test_the_clock_counts_the_timed_steps_images_and_ends_the_loop():
    clock = StepClock(warmup=1, steps=2, device=torch.device("cpu"))
    clock(8)
    assert clock.start is None
    clock(8)
    clock(6)
    with pytest.raises(official_loop._Timed):
        clock(8)
    assert clock.images == 14 and clock.seconds > 0


def test_a_patch_that_no_longer_matches_their_source_is_named():
    source = "".join(old for old, _, _ in official_loop.PATCHES)
    patched = official_loop.patched_source(source)
    assert ".cuda()" not in patched and "_step_hook(batch_sz)" in patched
    with pytest.raises(OfficialLoopError, match="no longer contains 'label_idx = indexes"):
        official_loop.patched_source(source.replace("label_idx = indexes[update_idx]", ""))


def test_a_missing_copy_of_their_code_says_how_to_get_it(tmp_path):
    with pytest.raises(OfficialLoopError, match="bench.official_loop prepare"):
        official_loop.load(folder=tmp_path / "absent")


@pytest.fixture(scope="module")
def synth_rafdb(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("synth") / "rafdb", train=40, test=8, size=40, workers=1,
                            progress=False)


@needs_their_code
@pytest.mark.slow
@pytest.mark.parametrize("method, workers", [("scn", 1), ("baseline", 0)])
def test_their_loop_runs_and_is_timed_on_the_synth_benchmark(synth_rafdb, tmp_path, method, workers, capsys):
    out = tmp_path / "official.json"
    official_loop.main(["time", "--data", str(synth_rafdb), "--size", "32", "--batch", "8", "--method", method,
                        "--device", "cpu", "--workers", str(workers), "--warmup", "1", "--steps", "50",
                        "--json", str(out)])
    result = json.loads(out.read_text())
    # 40 images are 5 batches of 8: after one warm-up step, 3 are timed; the last one ends their loop.
    assert (result["timed_steps"], result["images"], result["workers"]) == (3, 24, workers)
    assert result["images_per_s"] > 0 and result["source"].startswith(official_loop.UPSTREAM)
    assert ("--margin_1 -1" in result["command_line"]) == (method == "baseline")
    assert "Train set size: 40" in capsys.readouterr().out  # their own script ran


def test_an_epoch_too_short_to_time_is_refused_before_their_loop_starts(tmp_path):
    data = tmp_path / "rafdb"
    (data / "EmoLabel").mkdir(parents=True)
    (data / "EmoLabel" / "list_patition_label.txt").write_text(
        "".join(f"train_{i:05d}.jpg 1\n" for i in range(1, 41)) + "test_00001.jpg 2\n")
    with pytest.raises(OfficialLoopError, match="3 batches of 16: too few for 2 warm-up steps"):
        official_loop.time_loop(data=data, size=32, batch=16, method="scn", device=torch.device("cpu"),
                                workers=0, warmup=2, steps=50, folder=tmp_path / "absent")
