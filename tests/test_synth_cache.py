"""The default dataset: generated once into the cache, reused, safe with two processes at once."""
import multiprocessing

import pytest

from scn.synth import cache
from scn.synth.cache import COMPLETE_MARKER, default_dataset

SMALL = {"train": 14, "test": 7, "size": 48, "noise": 0.2, "seed": 1}
SMALL_NAME = "synth-v2-train14-test7-size48-noise0.2-seed1-rafdb"


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SCN_STUDIO_CACHE", str(tmp_path))
    return tmp_path / "datasets"


def test_generated_once_then_reused(cache_dir, monkeypatch):
    path = default_dataset(**SMALL, progress=False)
    assert path.parent == cache_dir
    assert path.name == SMALL_NAME
    assert (path / COMPLETE_MARKER).exists()
    assert len(list((path / "Image/aligned").iterdir())) == 21

    def must_not_run(*args, **kwargs):
        raise AssertionError("the cached dataset was generated again")

    monkeypatch.setattr(cache, "generate_dataset", must_not_run)
    assert default_dataset(**SMALL, progress=False) == path


def test_other_parameters_get_their_own_folder(cache_dir):
    a = default_dataset(**SMALL, progress=False)
    b = default_dataset(**{**SMALL, "noise": 0.0}, progress=False)
    assert a != b and b.name.endswith("noise0-seed1-rafdb")


def test_the_noise_model_is_part_of_the_key():
    names = {model: cache.dataset_name(**{**SMALL, "balance": "rafdb"}, noise_model=model)
             for model in ("symmetric", "pairwise", "annotators")}
    assert names["symmetric"] == SMALL_NAME  # the caches made before there were noise models stay valid
    assert names["pairwise"] == SMALL_NAME + "-pairwise"
    assert names["annotators"] == SMALL_NAME + "-annotators5-majority"
    assert cache.dataset_name(**{**SMALL, "balance": "rafdb"}, noise_model="annotators", annotators=3,
                              label_from="single") == SMALL_NAME + "-annotators3-single"


def test_incomplete_folder_and_leftover_scratch_are_replaced(cache_dir):
    path = default_dataset(**SMALL, progress=False)
    (path / COMPLETE_MARKER).unlink()
    (path / "groundtruth.csv").unlink()
    leftover = cache_dir / f".{SMALL_NAME}.killed"
    leftover.mkdir()
    assert default_dataset(**SMALL, progress=False) == path
    assert (path / "groundtruth.csv").exists() and (path / COMPLETE_MARKER).exists()
    assert not leftover.exists()


def _ask(queue):
    queue.put(str(default_dataset(**SMALL, progress=False)))


def test_two_processes_at_once_get_one_complete_dataset(cache_dir):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_ask, args=(queue,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    paths = {queue.get(timeout=5) for _ in workers}
    assert len(paths) == 1
    # Only the finished dataset and its lock file remain: no half-written temporary folders.
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted([SMALL_NAME, SMALL_NAME + ".lock"])
    assert len(list((cache_dir / SMALL_NAME / "Image/aligned").iterdir())) == 21

