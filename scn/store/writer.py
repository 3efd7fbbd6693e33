"""The trainer's handle on its run: the only writer of everything but the app's reviews and notes."""
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scn.store.schema import (CHECKPOINT_DIR, CONFIG_NAME, EPOCH_COLUMNS, PROBABILITY_DTYPE, RELABEL_COLUMNS,
                              SCHEMA, STEP_COLUMNS, connect, migrate)


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
