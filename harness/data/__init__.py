"""Data: published data sets (downloaded with checksums into a cache) and training corpora."""

from .published import DATASETS, PublishedDataset, data_dir, fetch, load_chinchilla
from .stream import SequenceSampler, TokenData, prepare_documents, read_text_folder  # training corpora

__all__ = [
    "DATASETS",
    "PublishedDataset",
    "SequenceSampler",
    "TokenData",
    "data_dir",
    "fetch",
    "load_chinchilla",
    "prepare_documents",
    "read_text_folder",
]
