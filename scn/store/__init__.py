"""The run store: one self-contained folder per run, written by its trainer, read by everyone else.

    schema      the folder's layout, the database schema, connections and the store's errors
    writer      RunWriter, the trainer's handle: the only writer of what a run records
    reader      RunReader and list_runs: every query of a run
    app_writes  AppWriter: the app's own writes (reviews, notes, tags), in tables of their own
"""
from scn.store.app_writes import AppWriter, clean_tags
from scn.store.reader import RunReader, list_runs
from scn.store.schema import (ATTENTION_COLUMNS, CHECKPOINT_DIR, CHECKPOINTS, CONFIG_NAME, DB_NAME, EPOCH_COLUMNS,
                              LOG_NAME, RunDamagedError, RunNotFoundError, RunReadOnlyError, checkpoint_path,
                              connect, runs_root)
from scn.store.writer import RunWriter

__all__ = ["ATTENTION_COLUMNS", "AppWriter", "CHECKPOINTS", "CHECKPOINT_DIR", "CONFIG_NAME", "DB_NAME",
           "EPOCH_COLUMNS", "LOG_NAME", "RunDamagedError", "RunNotFoundError", "RunReadOnlyError", "RunReader",
           "RunWriter", "checkpoint_path", "clean_tags", "connect", "list_runs", "runs_root"]
