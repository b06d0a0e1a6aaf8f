"""The per-sample index: sequences and sources packed beside the keys; index files without them still load."""

from __future__ import annotations

import numpy as np

from camtrap_fast.shards.sample_index import SampleIndex


def _index(**extra) -> SampleIndex:
    return SampleIndex.build(keys=["a_d0", "a_d1", "b"], labels=[0, 0, 1], shard_ids=[0, 0, 0],
                             offsets=[512, 2048, 4096], sizes=[10, 20, 30], shards=["train/shard-000000.tar"],
                             **extra)


def test_sequences_and_sources_round_trip(tmp_path):
    index = _index(sequences=["seq1", "seq1", ""], sources=["cam/a.jpg", "cam/a.jpg", "cam/b é.jpg"])
    index.save(tmp_path / "index.npz")
    loaded = SampleIndex.load(tmp_path / "index.npz")
    assert loaded.keys() == ["a_d0", "a_d1", "b"]
    assert loaded.sequences() == ["seq1", "seq1", ""]
    assert loaded.sources() == ["cam/a.jpg", "cam/a.jpg", "cam/b é.jpg"]
    assert loaded.source(2) == "cam/b é.jpg" and loaded.sequences([1]) == ["seq1"]


def test_index_written_before_sequences_and_sources_loads_with_empty_strings(tmp_path):
    index = _index()
    # the layout of index.npz before sequences and sources were added
    np.savez(tmp_path / "old.npz", labels=index.labels, shard_ids=index.shard_ids, offsets=index.offsets,
             sizes=index.sizes, key_blob=np.frombuffer(index.key_blob, dtype=np.uint8), key_ends=index.key_ends,
             shards=np.asarray(index.shards, dtype=str))
    old = SampleIndex.load(tmp_path / "old.npz")
    assert old.keys() == ["a_d0", "a_d1", "b"]
    assert old.sequences() == ["", "", ""] and old.sources() == ["", "", ""]
    assert index.sequences() == ["", "", ""]  # built without them
