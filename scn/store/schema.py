"""The run store's layout and how its database is opened: file names, the SQLite schema and its
migrations, the store's errors, and connections (read-only for readers).

The run store: one self-contained folder per run, written by its trainer, read by everyone else.

    runs/NAME/
        config.json        the training configuration
        run.db             SQLite in WAL mode, so readers never block the writer
        checkpoints/       last.pt (resume) and best.pt (chosen on a named split)
        train.log          the trainer's log
        trainer.lock       held by a live trainer (scn.lock)

Per-epoch attention weights, and each training sample's prediction, p(given label) and p_max
(`history`), are stored as one row per epoch holding packed arrays: one epoch of AffectNet (~287k
samples) is a single indexed read instead of 287k rows to materialise. The test set's per-sample
predictions and probabilities are kept per epoch alike (`predictions`), for the confusion drill-down.
Relabel events are ordinary rows, indexed by epoch. Folders move between machines as they are:
nothing in them names an absolute path that the reader needs.

The trainer writes a run (scn.store.writer); everyone reads it (scn.store.reader); the app's own
writes, reviews and notes, go to tables of their own (scn.store.app_writes).
"""
import os
import sqlite3
import urllib.parse
from pathlib import Path

import numpy as np

DB_NAME = "run.db"
CONFIG_NAME = "config.json"
LOG_NAME = "train.log"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINTS = ("best", "last")

# A review of one training image's final label, whatever relabels led to it: `label` is the label
# the image trains with after review (its label when accepted, the original when reverted, or the
# one the user set).
IMAGE_REVIEWS_SCHEMA = """
CREATE TABLE IF NOT EXISTS image_reviews (
    idx INTEGER PRIMARY KEY, decision TEXT NOT NULL CHECK (decision IN ('accept', 'revert', 'set')),
    label INTEGER NOT NULL, time REAL NOT NULL);
"""
# Where a relabel event comes from: SCN's relabel rule in training, or the user's review applied
# when the run resumed with its reviewed labels.
EVENT_KINDS = ("scn", "review")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS status (
    id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL, pid INTEGER, heartbeat REAL,
    started REAL, finished REAL, epoch INTEGER, total_epochs INTEGER, step INTEGER,
    steps_per_epoch INTEGER, message TEXT);
CREATE TABLE IF NOT EXISTS samples (
    split TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, label INTEGER NOT NULL,
    PRIMARY KEY (split, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS arrays (name TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS step_metrics (
    global_step INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, step INTEGER NOT NULL, time REAL,
    loss REAL, loss_wce REAL, loss_rr REAL, accuracy REAL, lr REAL, images_per_s REAL);
CREATE TABLE IF NOT EXISTS epoch_metrics (
    epoch INTEGER PRIMARY KEY, time REAL, seconds REAL, lr REAL, images_per_s REAL,
    train_loss REAL, train_loss_wce REAL, train_loss_rr REAL, train_accuracy REAL,
    val_accuracy REAL, test_accuracy REAL, test_loss REAL,
    alpha_mean REAL, alpha_std REAL, alpha_gap REAL, relabels INTEGER, train_accuracy_original REAL,
    train_accuracy_truth REAL, rr_active_share REAL, rr_hinge_mean REAL);
CREATE TABLE IF NOT EXISTS attention (
    epoch INTEGER PRIMARY KEY, alpha BLOB NOT NULL, is_high BLOB NOT NULL, label BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    epoch INTEGER PRIMARY KEY, pred BLOB NOT NULL, p_given BLOB NOT NULL, p_max BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    epoch INTEGER NOT NULL, split TEXT NOT NULL, pred BLOB NOT NULL, probs BLOB NOT NULL,
    PRIMARY KEY (epoch, split));
CREATE TABLE IF NOT EXISTS relabels (
    id INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, step INTEGER NOT NULL, idx INTEGER NOT NULL,
    old INTEGER NOT NULL, new INTEGER NOT NULL, p_max REAL, p_given REAL, alpha REAL, grp TEXT,
    kind TEXT NOT NULL DEFAULT 'scn');
CREATE INDEX IF NOT EXISTS relabels_by_epoch ON relabels (epoch, old, new);
CREATE TABLE IF NOT EXISTS confusion (
    epoch INTEGER NOT NULL, split TEXT NOT NULL, matrix TEXT NOT NULL, PRIMARY KEY (epoch, split));
CREATE TABLE IF NOT EXISTS warnings (
    id INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL,
    figures TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reviews (
    event_id INTEGER PRIMARY KEY, idx INTEGER NOT NULL, decision TEXT NOT NULL
        CHECK (decision IN ('accept', 'revert')), time REAL NOT NULL);
""" + IMAGE_REVIEWS_SCHEMA

# Columns added after run stores were first written: (table, column, definition). A writer adds
# them to an older store it opens (a resumed run); readers of older stores fill in the default, or
# see a missing value.
MIGRATIONS = (("relabels", "kind", "TEXT NOT NULL DEFAULT 'scn'"),
              ("epoch_metrics", "train_accuracy_original", "REAL"),
              ("epoch_metrics", "train_accuracy_truth", "REAL"),
              ("epoch_metrics", "rr_active_share", "REAL"),
              ("epoch_metrics", "rr_hinge_mean", "REAL"))

STEP_COLUMNS = ("global_step", "epoch", "step", "time", "loss", "loss_wce", "loss_rr", "accuracy",
                "lr", "images_per_s")
EPOCH_COLUMNS = ("epoch", "time", "seconds", "lr", "images_per_s", "train_loss", "train_loss_wce",
                 "train_loss_rr", "train_accuracy", "val_accuracy", "test_accuracy", "test_loss",
                 "alpha_mean", "alpha_std", "alpha_gap", "relabels", "train_accuracy_original",
                 "train_accuracy_truth", "rr_active_share", "rr_hinge_mean")
# Probabilities are kept in float16 (3 significant digits, plenty for a chart) and predictions in
# int8 (-1: not seen that epoch), so the new per-sample arrays add 5 bytes a sample per epoch.
PROBABILITY_DTYPE = np.float16
WARNING_COLUMNS = ("epoch", "kind", "message", "figures")
ATTENTION_COLUMNS = ["idx", "alpha", "is_high", "label", "original_label", "pred", "p_given", "p_max"]
RELABEL_COLUMNS = ("epoch", "step", "idx", "old", "new", "p_max", "p_given", "alpha", "grp", "kind")
# A person's notes and tags on a run: the app's write, in a table of its own. Created on the first
# write, so run stores from before it read as "no notes, no tags".
ANNOTATIONS_SCHEMA = """CREATE TABLE IF NOT EXISTS annotations (
    id INTEGER PRIMARY KEY CHECK (id = 1), note TEXT NOT NULL, tags TEXT NOT NULL, time REAL NOT NULL)"""


def checkpoint_path(run_dir, which: str) -> Path:
    """Where a run keeps its `best` (chosen on validation) or `last` checkpoint."""
    if which not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, not {which!r}")
    return Path(run_dir) / CHECKPOINT_DIR / f"{which}.pt"


class RunNotFoundError(FileNotFoundError):
    """Raised when a run folder (or its database) does not exist."""


class RunReadOnlyError(PermissionError):
    """Raised when a review or a note cannot be written because the run's folder is read-only."""


class RunDamagedError(RuntimeError):
    """Raised when a run's database is truncated or otherwise unreadable; its checkpoints may
    still be fine (predict and eval work from them alone)."""


def runs_root() -> Path:
    """Where runs live: $SCN_RUNS_DIR, else ./runs."""
    return Path(os.environ.get("SCN_RUNS_DIR", "runs"))


def connect(run_dir, *, create: bool = False, read_only: bool = False) -> sqlite3.Connection:
    """A connection to the run's database; `read_only` for readers, so that a runs folder on a
    read-only disk, a shared mount or an archive can still be looked at."""
    path = Path(run_dir) / DB_NAME
    if not create and not path.exists():
        raise RunNotFoundError(f"no run at {run_dir} (missing {DB_NAME})")
    if read_only:
        return _connect_read_only(path)
    conn = sqlite3.connect(path, timeout=30.0)
    # WAL is a property of the file, set once by its writer. A reader setting it would write a
    # header into an empty (0-byte) run.db and so hide that the file was damaged.
    if create:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """mode=ro reads a WAL database with its log, but needs run.db-wal and run.db-shm to exist or
    be creatable; where neither holds (a read-only folder the trainer left cleanly, which removes
    them) the file is complete on its own and is opened as immutable."""
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}"
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30.0)
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if "unable to open" not in str(exc) and "readonly" not in str(exc):
            raise
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=30.0)


def columns(conn: sqlite3.Connection, table: str) -> set:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def migrate(conn: sqlite3.Connection) -> None:
    """Add the MIGRATIONS columns that an older store lacks."""
    for table, column, definition in MIGRATIONS:
        if column not in columns(conn, table):
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
