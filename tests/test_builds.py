"""Shared builds: one process builds under the lock and writes its progress; others see it while
the lock is held, and never a progress file a killed builder left behind."""
from scn import builds


def test_a_running_build_shows_its_progress_and_a_finished_one_does_not(tmp_path):
    folder = tmp_path / "backbones"
    folder.mkdir()
    lock = folder / "face-v1.lock"
    logged = []
    with builds.exclusive(lock):
        with builds.progress(lock, what="the face backbone", log=logged.append) as line:
            line("epoch 1/16: loss 3.2")
            (running,) = builds.in_progress(tmp_path)
            assert [text.split(" ", 1)[1] for text in running] == ["building the face backbone", "epoch 1/16: loss 3.2"]
        assert builds.in_progress(tmp_path) == []
    assert logged == ["building the face backbone", "epoch 1/16: loss 3.2"]


def test_a_progress_file_left_by_a_killed_builder_is_not_a_build(tmp_path):
    folder = tmp_path / "datasets"
    folder.mkdir()
    (folder / "synth-noise0.3.lock").write_text("")
    (folder / "synth-noise0.3.progress").write_text("10:00:00 building the benchmark\n")
    assert builds.in_progress(tmp_path) == []
