"""Reading, checking and splitting datasets."""

from graft.data.example import Example
from graft.data.formats import FORMATS, detect_format, get_format
from graft.data.load import LoadedData, load_examples
from graft.data.readers import SUPPORTED, read_rows
from graft.data.split import split_examples

__all__ = [
    "Example",
    "FORMATS",
    "LoadedData",
    "SUPPORTED",
    "detect_format",
    "get_format",
    "load_examples",
    "read_rows",
    "split_examples",
]
