"""Ingest: a folder, a COCO Camera Traps JSON, a CSV or a Camtrap DP package -> a list of `Record`s (+ crop boxes)."""

from camtrap_fast.ingest.detect import FORMATS, load_records, load_source
from camtrap_fast.ingest.records import Record, Rejection

__all__ = ["FORMATS", "Record", "Rejection", "load_records", "load_source"]
