"""The built-in benchmark used when no data path is given: generated once, then reused.

The cache folder is `$SCN_STUDIO_CACHE/datasets/` (default `~/.cache/scn-studio/datasets/`), one
sub-folder per parameter set, e.g. `synth-v2-train3000-test750-size100-noise0-seed0-rafdb` (symmetric
noise) or `...-noise0.2-seed0-rafdb-annotators5-majority` (another noise model).
Two processes asking at once (the app and a trainer) are serialised by an exclusive lock on a
lock file; the data is rendered into a temporary folder and renamed into place only when
complete, with a marker file, so a reader never sees half a dataset.

Defaults: 3000 training and 750 test images at 100 px (RAF-DB's class balance) render in about
10 s and train for a few epochs in minutes on a 2-core laptop; no label noise, as the trainer's
default (scn.config: synth_noise), so the benchmark is clean unless a noise rate is asked for.
"""
import os
import shutil
import tempfile
from pathlib import Path

from scn import builds
from scn.synth.dataset import generate_dataset
from scn.synth.noise import DEFAULT_ANNOTATORS

GENERATOR_VERSION = 2  # bump when the images change, so old caches are not reused
COMPLETE_MARKER = ".complete"
DEFAULTS = {"train": 3000, "test": 750, "size": 100, "noise": 0.0, "seed": 0, "balance": "rafdb",
            "noise_model": "symmetric", "annotators": DEFAULT_ANNOTATORS, "label_from": "majority"}


def studio_cache() -> Path:
    """The folder of everything SCN Studio makes once and reuses (env SCN_STUDIO_CACHE overrides it)."""
    return Path(os.environ.get("SCN_STUDIO_CACHE") or Path.home() / ".cache" / "scn-studio")


def cache_root() -> Path:
    """The folder that holds generated datasets."""
    return studio_cache() / "datasets"


def dataset_name(*, train: int, test: int, size: int, noise: float, seed: int, balance: str,
                 noise_model: str = "symmetric", annotators: int = DEFAULT_ANNOTATORS,
                 label_from: str = "majority") -> str:
    """The cache folder name that encodes every parameter of a built-in dataset. Symmetric noise
    keeps the names of the caches made before there were other noise models, since it labels alike."""
    name = f"synth-v{GENERATOR_VERSION}-train{train}-test{test}-size{size}-noise{noise:g}-seed{seed}-{balance}"
    if noise_model == "annotators":
        return f"{name}-annotators{annotators}-{label_from}"
    return name if noise_model == "symmetric" else f"{name}-{noise_model}"


def default_dataset(*, train: int = DEFAULTS["train"], test: int = DEFAULTS["test"],
                    size: int = DEFAULTS["size"], noise: float = DEFAULTS["noise"],
                    seed: int = DEFAULTS["seed"], balance: str = DEFAULTS["balance"],
                    noise_model: str = DEFAULTS["noise_model"], annotators: int = DEFAULTS["annotators"],
                    label_from: str = DEFAULTS["label_from"], progress: bool = True) -> Path:
    """Path of the built-in benchmark with these parameters, generating it on first use."""
    labelling = {"noise_model": noise_model, "annotators": annotators, "label_from": label_from}
    name = dataset_name(train=train, test=test, size=size, noise=noise, seed=seed, balance=balance, **labelling)
    root = cache_root()
    target = root / name
    if (target / COMPLETE_MARKER).exists():
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create the dataset cache {root}: {error.strerror or error}") from None
    lock = root / f"{name}.lock"
    with builds.exclusive(lock):
        # Another process may have finished it while this one waited for the lock.
        if (target / COMPLETE_MARKER).exists():
            return target
        # Holding the lock, any scratch folder of this name is a leftover of a killed process.
        for stale in [target, *root.glob(f".{name}.*")]:
            if stale.is_dir():
                shutil.rmtree(stale)
        scratch = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        what = f"the built-in benchmark ({train:,} training and {test:,} test images at {size} px) into {target}"
        try:
            with builds.progress(lock, what=what):
                generate_dataset(scratch, train=train, test=test, size=size, noise=noise, seed=seed,
                                 balance=balance, overwrite=True, progress=progress, **labelling)
            (scratch / COMPLETE_MARKER).write_text(name + "\n")
            os.rename(scratch, target)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return target
