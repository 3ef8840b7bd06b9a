"""Data sets for training, all local: nothing is downloaded at run time.

`load_dataset(spec)` turns a spec such as ``"xor"``, ``"spiral:classes=5"``, ``"digits"``,
``"mnist:/data/mnist"`` or ``"table.csv"`` (with ``target="COLUMN"``) into a `Dataset` with seeded
train/validation/test splits, normalized with statistics from the training split only.
`DATASETS` lists the specs with one-line descriptions. Every bad input raises
`gradviz.errors.GradvizError` with a one-line message.
"""
from .csvdata import CsvTable, read_csv
from .dataset import CLASSIFICATION, REGRESSION, Dataset, Normalizer
from .idx import load_mnist_dir, parse_idx, read_idx, write_idx
from .loader import DATASETS, load_dataset
from .synthetic import boolean_gate, make_circles, make_moons, make_spiral

__all__ = [
    "CLASSIFICATION", "REGRESSION", "DATASETS", "CsvTable", "Dataset", "Normalizer",
    "boolean_gate", "load_dataset", "load_mnist_dir", "make_circles", "make_moons", "make_spiral",
    "parse_idx", "read_csv", "read_idx", "write_idx",
]
