"""Shards: records -> WebDataset tars + DALI .idx files + manifest + sample index."""
