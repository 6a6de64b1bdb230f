"""Data: published data sets (downloaded with checksums into a cache) and training corpora."""

from .published import DATASETS, PublishedDataset, data_dir, fetch, load_chinchilla

__all__ = ["DATASETS", "PublishedDataset", "data_dir", "fetch", "load_chinchilla"]
