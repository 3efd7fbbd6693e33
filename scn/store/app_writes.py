"""The app's writes to a run: reviews of relabel events and of images' final labels, and a person's
notes and tags. Each goes to a table of its own, so the trainer stays the only writer of what it
records; the review tables are read back by the trainer when a run resumes with its reviewed labels."""
import json
import sqlite3
import time

from scn.store.reader import RunReader
from scn.store.schema import ANNOTATIONS_SCHEMA, DB_NAME, IMAGE_REVIEWS_SCHEMA, RunReadOnlyError, connect

REVIEW_DECISIONS = ("accept", "revert")
IMAGE_REVIEW_DECISIONS = ("accept", "revert", "set")
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


class AppWriter:
    """The app's handle on a run for its own writes; `reader` is the run's RunReader."""

    def __init__(self, run_dir):
        self.reader = RunReader(run_dir)
        self.run_dir, self.name = self.reader.run_dir, self.reader.name

    def write_review(self, *, event_id: int, decision: str) -> None:
        """Accept or revert one relabel event; see write_reviews."""
        self.write_reviews(event_ids=[event_id], decision=decision)

    def write_reviews(self, *, event_ids, decision: str) -> None:
        """Accept or revert relabel events, all in one transaction; the app's writes go to the
        review tables only. Raises KeyError naming the ids the run does not have."""
        if decision not in REVIEW_DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(REVIEW_DECISIONS)}, not {decision!r}")
        ids = [int(i) for i in event_ids]
        events = self.reader.relabels().set_index("id")["idx"]
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
        count, classes = len(self.reader.original_labels()), len(self.reader.class_names())
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

    def annotate(self, *, note: str | None = None, tags=None) -> dict:
        """Set the run's note and/or tags (see clean_tags); None leaves that one as it is. Returns
        the annotations as stored. Raises ValueError for a note over MAX_NOTE_LENGTH characters or
        a bad tag, before anything is written."""
        current = self.reader.annotations()
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
