"""Reading a run: every query the pages, the command line and the benchmarks make of a run folder.
Readers open the database read-only (scn.store.schema.connect), so a run on a read-only disk can
still be looked at, and never block the trainer that writes it."""
import json
import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scn import lock
from scn.config import TrainConfig
from scn.selection import selected_epoch
from scn.store.schema import (ATTENTION_COLUMNS, CHECKPOINTS, CONFIG_NAME, DB_NAME, EPOCH_COLUMNS, EVENT_KINDS,
                              LOG_NAME, PROBABILITY_DTYPE, RELABEL_COLUMNS, STEP_COLUMNS,
                              WARNING_COLUMNS, RunDamagedError, RunNotFoundError, checkpoint_path, connect,
                              runs_root)

HEARTBEAT_STALE_SECONDS = 60.0


def _unpack(blob, dtype, n: int, *, missing=np.nan) -> np.ndarray:
    """A packed per-sample array, or `missing` for all `n` samples when it was not recorded."""
    if blob is None:
        return np.full(n, missing, dtype=np.float64 if np.isnan(missing) else np.int64)
    return np.frombuffer(blob, dtype)


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

    def annotations(self) -> dict:
        """{"note": text, "tags": [tag, ...]} a person wrote about the run (empty when none)."""
        rows = self._query("SELECT note, tags FROM annotations WHERE id = 1")
        return {"note": rows[0][0], "tags": json.loads(rows[0][1])} if rows else {"note": "", "tags": []}

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
