"""Ingest: a folder, a COCO Camera Traps JSON or a CSV -> a list of `Record`s."""

from camtrap_fast.ingest.detect import FORMATS, load_records, load_source
from camtrap_fast.ingest.records import Record, Rejection

__all__ = ["FORMATS", "Record", "Rejection", "load_records", "load_source"]
