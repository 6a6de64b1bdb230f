"""Data: published data sets (downloaded with checksums into a cache) and training corpora."""

from .published import PublishedDataset, data_dir, fetch
from .stream import SequenceSampler, TokenData, prepare_documents, read_text_folder  # training corpora

__all__ = [
    "PublishedDataset",
    "SequenceSampler",
    "TokenData",
    "data_dir",
    "fetch",
    "prepare_documents",
    "read_text_folder",
]
