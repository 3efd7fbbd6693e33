"""The run store: one self-contained folder per run, written by its trainer, read by everyone else.

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
"""
import json
import os
import sqlite3
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd

from scn import lock
from scn.config import TrainConfig
from scn.selection import selected_epoch

DB_NAME = "run.db"
CONFIG_NAME = "config.json"
LOG_NAME = "train.log"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINTS = ("best", "last")
HEARTBEAT_STALE_SECONDS = 60.0

# A review of one training image's final label, whatever relabels led to it: `label` is the label
# the image trains with after review (its label when accepted, the original when reverted, or the
# one the user set).
IMAGE_REVIEWS_SCHEMA = """
CREATE TABLE IF NOT EXISTS image_reviews (
    idx INTEGER PRIMARY KEY, decision TEXT NOT NULL CHECK (decision IN ('accept', 'revert', 'set')),
    label INTEGER NOT NULL, time REAL NOT NULL);
"""
REVIEW_DECISIONS = ("accept", "revert")
IMAGE_REVIEW_DECISIONS = ("accept", "revert", "set")
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
MAX_TAG_LENGTH = 40
MAX_NOTE_LENGTH = 20_000


def clean_tags(tags) -> list:
    """`tags` (a list, or one comma-separated string as typed) stripped, empty ones dropped and
    duplicates removed, in their order. Raises ValueError naming a tag that is too long or holds a
    comma or a line break."""
    if isinstance(tags, str):
        tags = tags.split(",")
    cleaned = []
    for tag in tags:
        if not isinstance(tag, str):
            raise ValueError(f"a tag must be text, not {type(tag).__name__} ({tag!r})")
        tag = tag.strip()
        if len(tag) > MAX_TAG_LENGTH:
            raise ValueError(f"tag {tag[:20]!r}... is {len(tag)} characters long; at most {MAX_TAG_LENGTH}")
        if any(c in tag for c in ",\n\r"):
            raise ValueError(f"tag {tag!r} holds a comma or a line break; tags are single words or phrases")
        if tag and tag not in cleaned:
            cleaned.append(tag)
    return cleaned


def checkpoint_path(run_dir, which: str) -> Path:
    """Where a run keeps its `best` (chosen on validation) or `last` checkpoint."""
    if which not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, not {which!r}")
    return Path(run_dir) / CHECKPOINT_DIR / f"{which}.pt"


def _unpack(blob, dtype, n: int, *, missing=np.nan) -> np.ndarray:
    """A packed per-sample array, or `missing` for all `n` samples when it was not recorded."""
    if blob is None:
        return np.full(n, missing, dtype=np.float64 if np.isnan(missing) else np.int64)
    return np.frombuffer(blob, dtype)


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


class RunWriter:
    """The trainer's handle on its run: the only writer of everything but reviews."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        (self.run_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
        self.conn = connect(self.run_dir, create=True)
        self.conn.executescript(SCHEMA)
        migrate(self.conn)
        self.conn.commit()

    def write_config(self, config: dict) -> None:
        """config.json for people and other tools, and the same in the database for the app."""
        (self.run_dir / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True))
        self.set_meta("config", config)

    def close(self) -> None:
        self.conn.close()

    def set_meta(self, key: str, value) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))
        self.conn.commit()

    def set_status(self, state: str, **fields) -> None:
        """Upsert the single status row; `fields` are columns of the status table."""
        fields = {"state": state, "heartbeat": time.time(), **fields}
        self.conn.execute("INSERT OR IGNORE INTO status (id, state) VALUES (1, ?)", (state,))
        assignments = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(f"UPDATE status SET {assignments} WHERE id = 1", tuple(fields.values()))
        self.conn.commit()

    def add_samples(self, split: str, names, labels) -> None:
        labels = np.asarray(labels, dtype=np.int16)
        self.conn.execute("DELETE FROM samples WHERE split = ?", (split,))
        self.conn.executemany(
            "INSERT INTO samples VALUES (?, ?, ?, ?)",
            ((split, i, name, int(label)) for i, (name, label) in enumerate(zip(names, labels))),
        )
        # Packed copy for the per-epoch attention query, which needs every original label at once.
        self.conn.execute("INSERT OR REPLACE INTO arrays VALUES (?, ?)", (f"{split}_labels", labels.tobytes()))
        self.conn.commit()

    def add_groundtruth(self, table: pd.DataFrame) -> None:
        """Keep the dataset's ground truth (built-in benchmark) inside the run, so it moves along."""
        table.to_sql("groundtruth", self.conn, if_exists="replace", index=False)
        self.conn.commit()

    def log_step(self, row: dict) -> None:
        self._insert("step_metrics", STEP_COLUMNS, row)

    def log_epoch(self, row: dict) -> None:
        self._insert("epoch_metrics", EPOCH_COLUMNS, row)

    def log_attention(self, epoch: int, *, alpha, is_high, labels) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO attention VALUES (?, ?, ?, ?)",
            (epoch, np.asarray(alpha, np.float32).tobytes(), np.asarray(is_high, np.uint8).tobytes(),
             np.asarray(labels, np.int16).tobytes()),
        )
        self.conn.commit()

    def log_history(self, epoch: int, *, pred, p_given, p_max) -> None:
        """Each training sample's prediction, p(label it was trained with) and max probability in
        `epoch`, taken from the same softmax the relabel rule reads."""
        self.conn.execute(
            "INSERT OR REPLACE INTO history VALUES (?, ?, ?, ?)",
            (epoch, np.asarray(pred, np.int8).tobytes(), np.asarray(p_given, PROBABILITY_DTYPE).tobytes(),
             np.asarray(p_max, PROBABILITY_DTYPE).tobytes()),
        )
        self.conn.commit()

    def log_predictions(self, epoch: int, split: str, *, pred, probs) -> None:
        """Per-sample predictions [N] and class probabilities [N, C] of an evaluated split."""
        self.conn.execute(
            "INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?)",
            (epoch, split, np.asarray(pred, np.int8).tobytes(),
             np.ascontiguousarray(probs, PROBABILITY_DTYPE).tobytes()),
        )
        self.conn.commit()

    def log_relabels(self, events) -> None:
        """`events`: scn.labels.RelabelEvent objects."""
        self.conn.executemany(
            f"INSERT INTO relabels ({', '.join(RELABEL_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(RELABEL_COLUMNS))})",
            ((e.epoch, e.step, e.index, e.old, e.new, e.p_max, e.p_given, e.alpha, e.group, e.kind)
             for e in events),
        )
        self.conn.commit()

    def log_warnings(self, epoch: int, warnings) -> None:
        """`warnings`: scn.collapse.CollapseWarning objects found at the end of `epoch`."""
        self.conn.executemany(
            "INSERT INTO warnings (epoch, kind, message, figures) VALUES (?, ?, ?, ?)",
            ((epoch, w.kind, w.message, json.dumps(w.figures)) for w in warnings),
        )
        self.conn.commit()

    def log_confusion(self, epoch: int, split: str, matrix) -> None:
        self.conn.execute("INSERT OR REPLACE INTO confusion VALUES (?, ?, ?)",
                          (epoch, split, json.dumps(np.asarray(matrix).astype(int).tolist())))
        self.conn.commit()

    def discard_from(self, *, epoch: int, step: int) -> None:
        """Drop what a killed trainer wrote after its last checkpoint (epoch, step), before resuming."""
        self.conn.execute("DELETE FROM step_metrics WHERE epoch > ? OR (epoch = ? AND step >= ?)",
                          (epoch, epoch, step))
        self.conn.execute("DELETE FROM relabels WHERE epoch > ? OR (epoch = ? AND step >= ?)",
                          (epoch, epoch, step))
        for table in ("epoch_metrics", "attention", "history", "predictions", "confusion", "warnings"):
            self.conn.execute(f"DELETE FROM {table} WHERE epoch >= ?", (epoch,))
        self.conn.commit()

    def _insert(self, table: str, columns: tuple, row: dict) -> None:
        unknown = set(row) - set(columns)
        if unknown:
            raise KeyError(f"{table} has no column(s) {sorted(unknown)}")
        names = list(row)
        self.conn.execute(
            f"INSERT OR REPLACE INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            tuple(row[n] for n in names),
        )
        self.conn.commit()


class RunReader:
    """Read-only queries the app and the CLI make; each opens a short-lived connection."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        if not (self.run_dir / DB_NAME).exists():
            raise RunNotFoundError(f"no run at {self.run_dir} (missing {DB_NAME})")

    @property
    def name(self) -> str:
        return self.run_dir.name

    def _query(self, sql: str, params=(), *, names: bool = False) -> list | tuple:
        """The rows of `sql`; with `names`, (column names, rows)."""
        conn = None
        try:
            conn = connect(self.run_dir, read_only=True)
            cursor = conn.execute(sql, params)
            rows = cursor.fetchall()
            return ([d[0] for d in cursor.description], rows) if names else rows
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return ([], []) if names else []
            raise
        except sqlite3.DatabaseError as exc:  # "malformed", "not a database": the file, not a query
            raise RunDamagedError(f"{self.run_dir / DB_NAME} is damaged: {exc}") from exc
        finally:
            if conn is not None:
                conn.close()

    def damage(self) -> str | None:
        """Why run.db cannot be trusted, judged from its size and header without opening it, or
        None. A live trainer's database is never judged: it may be mid-creation or mid-checkpoint."""
        path = self.run_dir / DB_NAME
        if lock.is_held(self.run_dir):
            return None
        size = path.stat().st_size
        if size == 0:
            return f"{path} is empty (0 bytes)"
        with open(path, "rb") as f:
            header = f.read(100)
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            return f"{path} is not an SQLite database"
        page_size = int.from_bytes(header[16:18], "big")
        expected = int.from_bytes(header[28:32], "big") * (65536 if page_size == 1 else page_size)
        # Pages not yet copied back from the write-ahead log (a checkpoint cut short by a full
        # disk, a trainer killed mid-checkpoint) are read from run.db-wal: the file is then
        # shorter than its header says and nothing is lost. Queries still catch a damaged one.
        wal = path.with_name(DB_NAME + "-wal")
        if size < expected and not (wal.is_file() and wal.stat().st_size > 0):
            return f"{path} is truncated ({size:,} of {expected:,} bytes)"
        return None

    def _frame(self, sql: str, params=(), *, columns) -> pd.DataFrame:
        return pd.DataFrame(self._query(sql, params), columns=list(columns))

    def meta(self, key: str, default=None):
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def config(self) -> dict:
        return self.meta("config", {})

    def class_names(self) -> list:
        return self.config().get("class_names", [])

    def status(self) -> dict:
        """The status row, with `state` corrected by liveness: a run that says "running" but whose
        trainer holds no lock is reported "interrupted" (killed, crashed, or the machine rebooted)."""
        damage = self.damage()
        try:
            rows = [] if damage else self._query(
                "SELECT state, pid, heartbeat, started, finished, epoch, total_epochs, step, "
                "steps_per_epoch, message FROM status WHERE id = 1")
        except RunDamagedError as exc:
            rows, damage = [], str(exc)
        keys = ("state", "pid", "heartbeat", "started", "finished", "epoch", "total_epochs", "step",
                "steps_per_epoch", "message")
        status = dict(zip(keys, rows[0])) if rows else {k: None for k in keys} | {"state": "created"}
        alive = lock.is_held(self.run_dir)
        status["alive"] = alive
        if status["state"] in ("running", "starting") and not alive:
            status["state"] = "interrupted"
        if damage:
            status |= {"state": "damaged", "message": damage}
        status["heartbeat_age"] = time.time() - status["heartbeat"] if status["heartbeat"] else None
        return status

    def log_tail(self, *, lines: int = 40) -> str:
        path = self.run_dir / LOG_NAME
        if not path.exists():
            return ""
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 200 * lines))
            text = f.read().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def step_metrics(self) -> pd.DataFrame:
        return self._frame(f"SELECT {', '.join(STEP_COLUMNS)} FROM step_metrics ORDER BY global_step",
                           columns=STEP_COLUMNS)

    def epoch_metrics(self) -> pd.DataFrame:
        """One row per finished epoch. train_accuracy is against the labels each sample was trained
        with (relabels included); train_accuracy_original against the dataset's labels, and
        train_accuracy_truth against the ground truth where the dataset has one (else missing)."""
        # SELECT *: a store written before MIGRATIONS lacks their columns, and shows them as missing.
        columns, rows = self._query("SELECT * FROM epoch_metrics ORDER BY epoch", names=True)
        return pd.DataFrame(rows, columns=columns).reindex(columns=list(EPOCH_COLUMNS))

    def warnings(self) -> pd.DataFrame:
        """Collapse warnings (scn.collapse), one row per epoch and kind; `figures` parsed from JSON."""
        frame = self._frame(f"SELECT {', '.join(WARNING_COLUMNS)} FROM warnings ORDER BY epoch, id",
                            columns=WARNING_COLUMNS)
        frame["figures"] = [json.loads(text) for text in frame["figures"]]
        return frame

    def attention_epochs(self) -> list:
        return [row[0] for row in self._query("SELECT epoch FROM attention ORDER BY epoch")]

    def attention(self, epoch: int | None = None) -> pd.DataFrame:
        """Every training sample's alpha in `epoch` (default: the latest), with its group, labels
        and what the model made of it.

        Columns: idx, alpha, is_high, label (the label it was trained with that epoch),
        original_label, pred (predicted class; -1 where unknown), p_given (probability of `label`)
        and p_max. pred, p_given and p_max are missing (-1, NaN) in stores written before they were
        recorded. Empty when no epoch has been recorded.
        """
        if epoch is None:
            epochs = self.attention_epochs()
            if not epochs:
                return pd.DataFrame(columns=ATTENTION_COLUMNS)
            epoch = epochs[-1]
        rows = self._query(
            "SELECT a.alpha, a.is_high, a.label, h.pred, h.p_given, h.p_max FROM attention a "
            "LEFT JOIN history h USING (epoch) WHERE epoch = ?", (epoch,))
        if not rows and "history" not in self._tables():
            rows = [r + (None, None, None) for r in self._query(
                "SELECT alpha, is_high, label FROM attention WHERE epoch = ?", (epoch,))]
        if not rows:
            return pd.DataFrame(columns=ATTENTION_COLUMNS)
        alpha, is_high, label, pred, p_given, p_max = rows[0]
        alpha = np.frombuffer(alpha, np.float32)
        n = len(alpha)
        return pd.DataFrame({
            "idx": np.arange(n),
            "alpha": alpha,
            "is_high": np.frombuffer(is_high, np.uint8).astype(bool),
            "label": np.frombuffer(label, np.int16).astype(np.int64),
            "original_label": self.original_labels(),
            "pred": _unpack(pred, np.int8, n, missing=-1).astype(np.int64),
            "p_given": _unpack(p_given, PROBABILITY_DTYPE, n).astype(np.float32),
            "p_max": _unpack(p_max, PROBABILITY_DTYPE, n).astype(np.float32),
        })

    def sample_history(self, idx: int) -> pd.DataFrame:
        """One training sample across the recorded epochs: epoch, alpha, is_high, label (trained
        with), pred, p_given, p_max (-1 / NaN where the store predates them). Reads a few bytes of
        each epoch's arrays, not whole epochs."""
        n = len(self.original_labels())
        if not 0 <= int(idx) < n:
            raise IndexError(f"run {self.name} has no training sample {idx} (it has {n})")
        idx = int(idx)
        fields = [("alpha", "attention", np.float32), ("is_high", "attention", np.uint8),
                  ("label", "attention", np.int16)]
        has_history = "history" in self._tables()
        if has_history:
            fields += [("pred", "history", np.int8), ("p_given", "history", PROBABILITY_DTYPE),
                       ("p_max", "history", PROBABILITY_DTYPE)]
        # substr() on a blob is 1-based and counts bytes.
        parts = ", ".join(f"substr({table[0]}.{name}, {idx * np.dtype(dtype).itemsize + 1}, "
                          f"{np.dtype(dtype).itemsize})" for name, table, dtype in fields)
        join = " LEFT JOIN history h USING (epoch)" if has_history else ""
        rows = self._query(f"SELECT epoch, {parts} FROM attention a{join} ORDER BY epoch")
        frame = pd.DataFrame({"epoch": [r[0] for r in rows]}, dtype=np.int64)
        for position, (name, _, dtype) in enumerate(fields, start=1):
            missing = -1 if np.dtype(dtype).kind == "i" else np.nan
            frame[name] = [missing if r[position] is None else np.frombuffer(r[position], dtype)[0]
                           for r in rows]
        for name, missing in (("pred", -1), ("p_given", np.nan), ("p_max", np.nan)):
            if name not in frame:
                frame[name] = missing
        frame["is_high"] = frame["is_high"].astype(bool)
        return frame.astype({"alpha": np.float32, "p_given": np.float32, "p_max": np.float32,
                             "label": np.int64, "pred": np.int64})

    def prediction_epochs(self, split: str = "test") -> list:
        """The epochs with per-sample predictions of `split` (see `predictions`)."""
        return [r[0] for r in self._query(
            "SELECT epoch FROM predictions WHERE split = ? ORDER BY epoch", (split,))]

    def predictions(self, epoch: int, split: str = "test") -> pd.DataFrame | None:
        """Each sample of an evaluated split at `epoch`: idx, name, label (its given label), pred,
        then one probability column per class, named after it. None when the store has no
        per-sample predictions for that epoch (stores written before they were recorded)."""
        rows = self._query("SELECT pred, probs FROM predictions WHERE epoch = ? AND split = ?",
                           (epoch, split))
        if not rows:
            return None
        pred = np.frombuffer(rows[0][0], np.int8).astype(np.int64)
        probs = np.frombuffer(rows[0][1], PROBABILITY_DTYPE).astype(np.float32).reshape(len(pred), -1)
        names = self.class_names() or [str(c) for c in range(probs.shape[1])]
        frame = self.samples(split).assign(pred=pred)
        return pd.concat([frame, pd.DataFrame(probs, columns=list(names))], axis=1)

    def _tables(self) -> set:
        return {row[0] for row in self._query("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def attention_matrix(self) -> tuple:
        """All recorded epochs at once: (epochs, alpha[epoch, sample], is_high[epoch, sample]), one
        query for the across-epoch views instead of one per epoch."""
        rows = self._query("SELECT epoch, alpha, is_high FROM attention ORDER BY epoch")
        if not rows:
            return [], np.zeros((0, 0), np.float32), np.zeros((0, 0), bool)
        return ([r[0] for r in rows],
                np.stack([np.frombuffer(r[1], np.float32) for r in rows]),
                np.stack([np.frombuffer(r[2], np.uint8).astype(bool) for r in rows]))

    def original_labels(self) -> np.ndarray:
        rows = self._query("SELECT data FROM arrays WHERE name = 'train_labels'")
        return np.frombuffer(rows[0][0], np.int16).astype(np.int64) if rows else np.zeros(0, np.int64)

    def samples(self, split: str = "train") -> pd.DataFrame:
        return self._frame("SELECT idx, name, label FROM samples WHERE split = ? ORDER BY idx",
                           (split,), columns=("idx", "name", "label"))

    def _kind_column(self) -> str:
        """The relabels' kind, or 'scn' for every event of a store written before kinds existed."""
        rows = self._query("SELECT 1 FROM pragma_table_info('relabels') WHERE name = 'kind'")
        return "kind" if rows else "'scn' AS kind"

    def relabels(self, *, epoch: int | None = None, old: int | None = None, new: int | None = None,
                 min_margin: float | None = None, kind: str | None = None) -> pd.DataFrame:
        """Relabel events, filtered, in the order they happened; `margin` = p_max - p_given is added
        as a column. `kind`: "scn" (the relabel rule) or "review" (a reviewed label applied on
        resume; it has no probabilities, so a min_margin leaves it out)."""
        if kind is not None and kind not in EVENT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(EVENT_KINDS)}, not {kind!r}")
        clauses, params = [], []
        for column, value in (("epoch", epoch), ("old", old), ("new", new)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(int(value))
        if min_margin is not None:
            clauses.append("p_max - p_given >= ?")
            params.append(float(min_margin))
        kind_column = self._kind_column()
        if kind is not None:
            clauses.append("kind = ?" if kind_column == "kind" else "'scn' = ?")
            params.append(kind)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        columns = ("id",) + RELABEL_COLUMNS
        select = ", ".join(columns[:-1] + (kind_column,))
        frame = self._frame(f"SELECT {select} FROM relabels {where} ORDER BY id",
                            params, columns=columns)
        frame["margin"] = frame["p_max"] - frame["p_given"]
        return frame

    def relabel_counts(self) -> pd.DataFrame:
        """Events per (epoch, old, new, kind): the cheap aggregate the charts need."""
        kind = self._kind_column()
        return self._frame(f"SELECT epoch, old, new, {kind.split()[0]}, COUNT(*) FROM relabels "
                           "GROUP BY epoch, old, new, 4",
                           columns=("epoch", "old", "new", "kind", "count"))

    def confusion_epochs(self, split: str = "test") -> list:
        return [r[0] for r in self._query(
            "SELECT epoch FROM confusion WHERE split = ? ORDER BY epoch", (split,))]

    def confusion(self, epoch: int, split: str = "test") -> np.ndarray | None:
        rows = self._query("SELECT matrix FROM confusion WHERE epoch = ? AND split = ?", (epoch, split))
        return np.array(json.loads(rows[0][0]), dtype=np.int64) if rows else None

    def has_groundtruth(self) -> bool:
        """Whether the run was trained on the built-in benchmark and so has its ground truth; far
        cheaper than reading the table."""
        return bool(self._query("SELECT 1 FROM groundtruth LIMIT 1"))

    def groundtruth(self) -> pd.DataFrame | None:
        """The dataset's ground-truth table when the run was trained on the built-in benchmark."""
        columns, rows = self._query("SELECT * FROM groundtruth", names=True)
        return pd.DataFrame(rows, columns=columns) if columns else None

    def reviews(self) -> pd.DataFrame:
        """Reviews of single relabel events (accept / revert)."""
        return self._frame("SELECT event_id, idx, decision, time FROM reviews ORDER BY event_id",
                           columns=("event_id", "idx", "decision", "time"))

    def image_reviews(self) -> pd.DataFrame:
        """Reviews of training images' final labels: idx, decision (accept / revert / set), the
        label the image trains with after review, time."""
        return self._frame("SELECT idx, decision, label, time FROM image_reviews ORDER BY idx",
                           columns=("idx", "decision", "label", "time"))

    def write_review(self, *, event_id: int, decision: str) -> None:
        """Accept or revert one relabel event; see write_reviews."""
        self.write_reviews(event_ids=[event_id], decision=decision)

    def write_reviews(self, *, event_ids, decision: str) -> None:
        """Accept or revert relabel events, all in one transaction; the app's writes go to the
        review tables only. Raises KeyError naming the ids the run does not have."""
        if decision not in REVIEW_DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(REVIEW_DECISIONS)}, not {decision!r}")
        ids = [int(i) for i in event_ids]
        events = self.relabels().set_index("id")["idx"]
        missing = sorted(set(ids) - set(events.index))
        if missing:
            raise KeyError(f"run {self.name} has no relabel event {', '.join(map(str, missing[:5]))}")
        now = time.time()
        self._write("INSERT OR REPLACE INTO reviews VALUES (?, ?, ?, ?)",
                    [(i, int(events[i]), decision, now) for i in ids])

    def write_image_reviews(self, *, labels: dict, decision: str) -> None:
        """Review training images' final labels: `labels` maps idx to the label each trains with
        after review (see IMAGE_REVIEWS_SCHEMA). One transaction; creates the table in a store
        written before image reviews existed."""
        if decision not in IMAGE_REVIEW_DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(IMAGE_REVIEW_DECISIONS)}, "
                             f"not {decision!r}")
        count, classes = len(self.original_labels()), len(self.class_names())
        bad = [i for i in labels if not 0 <= int(i) < count]
        if bad:
            raise KeyError(f"run {self.name} has no training image {bad[0]} (it has {count})")
        wrong = [v for v in labels.values() if classes and not 0 <= int(v) < classes]
        if wrong:
            raise ValueError(f"label {wrong[0]} is not a class of run {self.name} (0 to {classes - 1})")
        now = time.time()
        self._write("INSERT OR REPLACE INTO image_reviews VALUES (?, ?, ?, ?)",
                    [(int(i), decision, int(v), now) for i, v in labels.items()],
                    schema=IMAGE_REVIEWS_SCHEMA)

    def _write(self, sql: str, rows: list, *, schema: str | None = None) -> None:
        conn = None
        try:
            conn = connect(self.run_dir)
            if schema:
                conn.executescript(schema)
            conn.executemany(sql, rows)
            conn.commit()
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc) or "unable to open" in str(exc):
                raise RunReadOnlyError(f"cannot write to run {self.name}: {self.run_dir / DB_NAME} is "
                                       "read-only (its folder or disk); its records can still be read") from exc
            raise
        finally:
            if conn is not None:
                conn.close()

    def annotations(self) -> dict:
        """{"note": text, "tags": [tag, ...]} a person wrote about the run (empty when none)."""
        rows = self._query("SELECT note, tags FROM annotations WHERE id = 1")
        return {"note": rows[0][0], "tags": json.loads(rows[0][1])} if rows else {"note": "", "tags": []}

    def annotate(self, *, note: str | None = None, tags=None) -> dict:
        """Set the run's note and/or tags (see clean_tags); None leaves that one as it is. Returns
        the annotations as stored. Raises ValueError for a note over MAX_NOTE_LENGTH characters or
        a bad tag, before anything is written."""
        current = self.annotations()
        if note is not None:
            if not isinstance(note, str):
                raise ValueError(f"a note must be text, not {type(note).__name__}")
            if len(note) > MAX_NOTE_LENGTH:
                raise ValueError(f"the note is {len(note):,} characters long; at most {MAX_NOTE_LENGTH:,}")
            current["note"] = note.strip()
        if tags is not None:
            current["tags"] = clean_tags(tags)
        self._write("INSERT OR REPLACE INTO annotations VALUES (1, ?, ?, ?)",
                    [(current["note"], json.dumps(current["tags"]), time.time())], schema=ANNOTATIONS_SCHEMA)
        return current

    def checkpoint_path(self, which: str = "best") -> Path:
        return checkpoint_path(self.run_dir, which)

    def checkpoints(self) -> list:
        """The checkpoints this run has written so far, of "best" and "last"."""
        return [which for which in CHECKPOINTS if self.checkpoint_path(which).is_file()]

    def train_config(self) -> TrainConfig:
        """The run's options as the trainer resolved them (config.json), typed."""
        return TrainConfig.from_dict(self.config())

    def summary(self) -> dict:
        status = self.status()
        try:
            if status["state"] == "damaged":
                raise RunDamagedError(status["message"])
            config, epochs, notes = self.config(), self.epoch_metrics(), self.annotations()
        except RunDamagedError as exc:
            return self._damaged_summary(status, reason=str(exc))
        selected = selected_epoch(epochs)
        return {
            "name": self.name,
            "path": str(self.run_dir),
            "status": status["state"],
            "problem": None,
            "dataset": config.get("dataset_description", config.get("data", "")),
            "method": config.get("method_label", config.get("method", "")),
            "epoch": int(epochs["epoch"].max()) if len(epochs) else 0,
            "total_epochs": config.get("epochs"),
            "selected_test_accuracy": None if selected is None else selected["test_accuracy"],
            "selected_by": None if selected is None else selected["by"],
            "last_test_accuracy": float(epochs["test_accuracy"].iloc[-1]) if len(epochs) else None,
            "started": status["started"],
            "tags": notes["tags"],
            "note": notes["note"],
        }

    def _damaged_summary(self, status: dict, *, reason: str) -> dict:
        """What can still be said of a run whose database is damaged: config.json (the trainer
        writes it beside the database) and the file times."""
        try:
            config = json.loads((self.run_dir / CONFIG_NAME).read_text())
        except (OSError, ValueError):
            config = {}
        return {
            "name": self.name, "path": str(self.run_dir), "status": "damaged", "problem": reason,
            "dataset": config.get("dataset_description", config.get("data", "")),
            "method": config.get("method_label", config.get("method", "")),
            "epoch": 0, "total_epochs": config.get("epochs"), "selected_test_accuracy": None, "selected_by": None,
            "last_test_accuracy": None,
            "started": status["started"] or (self.run_dir / DB_NAME).stat().st_mtime,
            "tags": [], "note": "",
        }


def list_runs(root=None) -> pd.DataFrame:
    """One row per run folder under `root` (default runs_root()), newest first. A run whose
    database is damaged is listed with status "damaged" and the reason in `problem`, not left out."""
    root = Path(root) if root is not None else runs_root()
    columns = ["name", "path", "status", "problem", "dataset", "method", "epoch", "total_epochs",
               "selected_test_accuracy", "selected_by", "last_test_accuracy", "started", "tags", "note"]
    if not root.is_dir():
        return pd.DataFrame(columns=columns)
    rows = []
    for run_dir in sorted(p for p in root.iterdir() if (p / DB_NAME).exists()):
        try:
            rows.append(RunReader(run_dir).summary())
        except RunNotFoundError:
            continue  # deleted while listing
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("started", ascending=False, na_position="last").reset_index(drop=True)
