"""Tests for gradviz.data: built-in sets, splits, normalization, IDX and CSV files, bad input."""
import gzip

import numpy as np
import pytest

from gradviz.data import (DATASETS, Normalizer, load_dataset, make_circles, make_moons,
                          make_spiral, parse_idx, read_idx, write_idx)
from gradviz.errors import GradvizError


# ---------------------------------------------------------------------------------------------
# built-in sets


@pytest.mark.parametrize("name,targets", [("and", [0, 0, 0, 1]), ("or", [0, 1, 1, 1]),
                                          ("xor", [0, 1, 1, 0])])
def test_boolean_gates_use_all_points_everywhere(name, targets):
    ds = load_dataset(name)
    expected_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    for X, y in ds.splits.values():
        np.testing.assert_array_equal(X, expected_X)
        np.testing.assert_array_equal(y, targets)
        assert y.dtype == np.int64
    assert ds.n_classes == 2 and ds.input_shape == (2,) and ds.task == "classification"
    assert ds.normalizer.kind == "none"
    # the splits are separate arrays: changing one leaves the others alone
    ds.X_train[0, 0] = 5
    assert ds.X_val[0, 0] == 0


def test_boolean_gate_can_be_standardized_on_request():
    ds = load_dataset("xor", normalize="standardize")
    np.testing.assert_allclose(ds.X_train, [[-1, -1], [-1, 1], [1, -1], [1, 1]])


@pytest.mark.parametrize("spec,k,n", [("spiral", 3, 300), ("spiral:classes=5,n=250", 5, 250),
                                      ("spiral:4", 4, 300), ("moons", 2, 200),
                                      ("circles:factor=0.3", 2, 200)])
def test_generated_sets(spec, k, n):
    ds = load_dataset(spec, seed=3)
    total = sum(len(y) for _, y in ds.splits.values())
    assert total == n
    assert len(ds.y_test) == round(0.2 * n) and len(ds.y_val) == round(0.1 * n)
    assert ds.n_classes == k and ds.input_shape == (2,)
    assert set(np.unique(np.concatenate([y for _, y in ds.splits.values()]))) == set(range(k))
    # standardized with train statistics: train mean 0 and std 1, stats stored
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.X_train.std(axis=0), 1, atol=1e-4)
    assert ds.normalizer.kind == "standardize" and ds.normalizer.mean.shape == (2,)


def test_generated_sets_are_seeded():
    a, b, c = load_dataset("moons", seed=1), load_dataset("moons", seed=1), load_dataset("moons", seed=2)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_train, c.X_train)


def test_generators_shapes_and_geometry():
    X, y = make_spiral(n=301, classes=3, noise=0.0, seed=0)
    assert X.shape == (301, 2) and np.bincount(y).tolist() == [101, 100, 100]
    assert np.all(np.hypot(X[:, 0], X[:, 1]) <= 1 + 1e-12)
    X, y = make_circles(n=100, noise=0.0, factor=0.5, seed=0)
    r = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(r[y == 0], 1.0)
    np.testing.assert_allclose(r[y == 1], 0.5)
    X, y = make_moons(n=101, noise=0.0, seed=0)
    assert np.bincount(y).tolist() == [51, 50]
    np.testing.assert_allclose(np.hypot(X[y == 0, 0], X[y == 0, 1]), 1.0)


def test_n_and_noise_keywords():
    ds = load_dataset("circles", n=50, noise=0.0)
    assert sum(len(y) for _, y in ds.splits.values()) == 50
    with pytest.raises(GradvizError, match="n given twice"):
        load_dataset("moons:n=100", n=50)


def test_digits():
    ds = load_dataset("digits", seed=0)
    X = np.concatenate([ds.X_train, ds.X_val, ds.X_test])
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert X.shape == (1797, 64)
    assert ds.n_classes == 10 and set(np.unique(y)) == set(range(10))
    assert X.min() == 0.0 and X.max() == 1.0  # scaled from 0..16
    assert ds.image_shape == (1, 8, 8) and ds.input_shape == (64,)
    img = ds.with_layout("image")
    assert img.input_shape == (1, 8, 8) and img.X_train.shape == (len(ds.y_train), 1, 8, 8)
    np.testing.assert_array_equal(img.with_layout("flat").X_test, ds.X_test)
    small = load_dataset("digits", n=100, layout="image")
    assert sum(len(y) for _, y in small.splits.values()) == 100
    assert small.X_train.shape[1:] == (1, 8, 8)
    # a checkpointed normalizer prepares new raw data exactly like the training data
    raw = np.full((2, 64), 8.0)
    np.testing.assert_allclose(small.normalize(raw), 0.5)
    assert small.normalize(raw).shape == (2, 1, 8, 8)
    again = Normalizer.from_dict(small.normalizer.to_dict())
    np.testing.assert_allclose(again.apply(raw), 0.5)


def test_datasets_listing():
    for name in ("and", "or", "xor", "spiral", "moons", "circles", "digits", "mnist:DIR",
                 "fashion-mnist:DIR", "FILE.csv"):
        assert name in DATASETS and DATASETS[name]
    assert all("\n" not in d for d in DATASETS.values())


def test_dtype_and_fractions():
    ds = load_dataset("spiral", dtype="float64", val_fraction=0.0, test_fraction=0.5)
    assert ds.X_train.dtype == np.float64
    assert len(ds.y_val) == 0 and len(ds.y_test) == 150 and ds.X_val.shape == (0, 2)


# ---------------------------------------------------------------------------------------------
# bad input: every one is a GradvizError with one line


@pytest.mark.parametrize("kwargs,match", [
    (dict(spec="nope"), "unknown data set 'nope'"),
    (dict(spec=""), "non-empty"),
    (dict(spec="xor", n=10), "n does not apply"),
    (dict(spec="xor:n=3"), "takes no options"),
    (dict(spec="moons", target="y"), "only to CSV"),
    (dict(spec="moons:colour=red"), "unknown option 'colour'"),
    (dict(spec="moons:n=many"), "must be an integer"),
    (dict(spec="spiral:classes=1"), "classes >= 2"),
    (dict(spec="circles:factor=2"), "between 0 and 1"),
    (dict(spec="moons", val_fraction=0.5, test_fraction=0.5), "below 1"),
    (dict(spec="moons", test_fraction=-0.1), r"\[0, 1\)"),
    (dict(spec="moons", seed=-1), "seed"),
    (dict(spec="moons", n=0), "n must be"),
    (dict(spec="moons", layout="image"), "not made of images"),
    (dict(spec="moons", layout="square"), "unknown layout"),
    (dict(spec="moons", normalize="scale"), "for images"),
    (dict(spec="moons", dtype="int32"), "float32 or float64"),
    (dict(spec="missing/file.csv"), "no such file"),
    (dict(spec="missing/dir"), "no such file"),
])
def test_bad_specs(kwargs, match):
    spec = kwargs.pop("spec")
    with pytest.raises(GradvizError, match=match) as info:
        load_dataset(spec, **kwargs)
    assert "\n" not in str(info.value)


def test_mnist_by_name_without_the_files_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADVIZ_DATA", str(tmp_path))
    with pytest.raises(GradvizError, match=r"mnist is not fetched in .*; run: gradviz data fetch "
                                           r"mnist \(or give a directory: mnist:DIR\)"):
        load_dataset("mnist")


def test_directory_without_prefix(tmp_path):
    with pytest.raises(GradvizError, match="is a directory"):
        load_dataset(str(tmp_path))


# ---------------------------------------------------------------------------------------------
# IDX / MNIST


def make_mnist(d, n_train=30, n_test=10, gz=False, rows=28, cols=28, seed=0):
    rng = np.random.default_rng(seed)
    sfx = ".gz" if gz else ""
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for name, arr in arrays.items():
        write_idx(d / (name + sfx), arr)
    return arrays


def test_idx_round_trip_and_header(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", a)
    raw = (tmp_path / "a.idx").read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0C, 3])
    assert raw[4:16] == bytes([0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)
    write_idx(tmp_path / "b.idx.gz", a.astype(np.float64))
    np.testing.assert_array_equal(read_idx(tmp_path / "b.idx.gz"), a)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_dir(tmp_path, gz):
    arrays = make_mnist(tmp_path, gz=gz)
    ds = load_dataset(f"mnist:{tmp_path}", val_fraction=0.2)
    assert len(ds.y_train) == 24 and len(ds.y_val) == 6 and len(ds.y_test) == 10
    assert ds.input_shape == (784,) and ds.image_shape == (1, 28, 28) and ds.n_classes == 10
    assert 0.0 <= ds.X_train.min() and ds.X_train.max() <= 1.0
    expected = arrays["t10k-images-idx3-ubyte"].reshape(10, -1) / 255.0
    np.testing.assert_allclose(ds.X_test, expected, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, np.arange(10))
    img = load_dataset(f"fashion-mnist:{tmp_path}", layout="image", n=12)
    assert img.X_train.shape[1:] == (1, 28, 28) and img.class_names[9] == "Ankle boot"
    assert len(img.y_train) + len(img.y_val) == 12 and len(img.y_test) == 10


def test_mnist_without_test_files_splits_train(tmp_path):
    make_mnist(tmp_path, n_train=40, rows=4, cols=5)
    for f in tmp_path.glob("t10k-*"):
        f.unlink()
    ds = load_dataset(f"mnist:{tmp_path}", layout="image")
    assert len(ds.y_test) == 8 and ds.input_shape == (1, 4, 5)


def _check_error(spec, match):
    with pytest.raises(GradvizError, match=match) as info:
        load_dataset(spec)
    assert "\n" not in str(info.value)


def test_mnist_missing_things(tmp_path):
    _check_error(f"mnist:{tmp_path / 'nowhere'}", "no such directory")
    _check_error(f"mnist:{tmp_path}", "missing train-images-idx3-ubyte")
    make_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    _check_error(f"mnist:{tmp_path}", "missing t10k-labels-idx1-ubyte")


@pytest.mark.parametrize("corrupt,match", [
    (lambda b: b"\x01\x02" + b[2:], "not an IDX file"),
    (lambda b: b[:2] + b"\x07" + b[3:], "unknown IDX type code 0x07"),
    (lambda b: b[:-5], "truncated"),
    (lambda b: b + b"\x00", "has 23521 bytes"),
    (lambda b: b[:3], "too short"),
    (lambda b: b[:3] + b"\x03" + b[4:9], "truncated IDX header"),
])
def test_corrupt_idx(tmp_path, corrupt, match):
    make_mnist(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(corrupt(p.read_bytes()))
    _check_error(f"mnist:{tmp_path}", match)


def test_idx_semantic_checks(tmp_path):
    make_mnist(tmp_path)
    # labels file holding images, count mismatch, labels out of range, corrupt gzip
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((30, 2, 2), np.uint8))
    _check_error(f"mnist:{tmp_path}", "expected unsigned-byte labels")
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(29, np.uint8))
    _check_error(f"mnist:{tmp_path}", "30 train images but 29 train labels")
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(30, 12, np.uint8))
    _check_error(f"mnist:{tmp_path}", "label 12 at index 0")
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(30, np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((10, 8, 8), np.uint8))
    _check_error(f"mnist:{tmp_path}", "28x28 but test images are 8x8")
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"x" * 100)[:20])
    _check_error(f"mnist:{tmp_path}", "corrupt gzip")


def test_parse_idx_directly():
    data = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])
    np.testing.assert_array_equal(parse_idx(data), [7, 8, 9])


# ---------------------------------------------------------------------------------------------
# CSV


def write(path, text):
    path.write_text(text)
    return str(path)


def test_csv_string_labels(tmp_path):
    rows = ["a,b,species"] + [f"{i},{2 * i + 1},{'cat' if i % 3 else 'dog'}" for i in range(20)]
    p = write(tmp_path / "pets.csv", "\n".join(rows) + "\n\n")
    ds = load_dataset(p, target="species", val_fraction=0.25, test_fraction=0.25)
    assert ds.task == "classification" and ds.n_classes == 2
    assert ds.class_names == ("cat", "dog") and ds.feature_names == ("a", "b")
    assert len(ds.y_train) == 10 and len(ds.y_val) == 5 and len(ds.y_test) == 5
    # standardized with train statistics only
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0, atol=1e-6)
    raw = np.array([[4.0, 9.0]])
    np.testing.assert_allclose(ds.normalize(raw),
                               (raw - ds.normalizer.mean) / ds.normalizer.std, rtol=1e-6)
    # the labels agree with the rule used to make them
    a = ds.normalizer.invert(np.concatenate([ds.X_train, ds.X_val, ds.X_test]))[:, 0]
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    np.testing.assert_array_equal(y, (np.round(a) % 3 == 0).astype(int))


def test_csv_numeric_targets(tmp_path):
    p = write(tmp_path / "c.csv", "x,label\n" + "".join(f"{i},{(i % 3) + 1}\n" for i in range(12)))
    ds = load_dataset(p, target="label")
    assert ds.task == "classification" and ds.class_names == ("1", "2", "3")
    assert set(np.concatenate([ds.y_train, ds.y_val, ds.y_test])) == {0, 1, 2}
    p = write(tmp_path / "r.csv", "x, y \n" + "".join(f"{i},{i * 0.5 + 0.25}\n" for i in range(30)))
    ds = load_dataset(p, target="y", dtype=np.float64)
    assert ds.task == "regression" and ds.n_classes == 0 and ds.y_train.dtype == np.float64
    forced = load_dataset(tmp_path / "c.csv", target="label", task="regression")
    assert forced.task == "regression"


def test_csv_gz_and_subset(tmp_path):
    text = "u,v,t\n" + "".join(f"{i},{-i},{i % 2}\n" for i in range(50))
    (tmp_path / "d.csv.gz").write_bytes(gzip.compress(text.encode()))
    ds = load_dataset(str(tmp_path / "d.csv.gz"), target="t", n=20)
    assert sum(len(y) for _, y in ds.splits.values()) == 20


@pytest.mark.parametrize("text,target,match", [
    ("a,b,t\n1,2,x\n3,oops,y\n", "t", r"line 3, column 'b': 'oops' is not a finite number"),
    ("a,b,t\n1,,x\n", "t", r"line 2, column 'b' is empty"),
    ("a,b,t\n1,inf,x\n", "t", "'inf' is not a finite number"),
    ("a,b,t\n1,2\n", "t", "line 2 has 2 cells but the header has 3"),
    ("a,b,t\n1,2,x\n", "z", "no column named 'z' \\(columns: a, b, t\\)"),
    ("a,b,t\n1,2,x\n", None, "--target"),
    ("", "t", "empty file"),
    ("a,b,t\n", "t", "no data rows"),
    ("a,a,t\n1,2,x\n", "t", "duplicate column"),
    ("t\n1\n", "t", "at least one feature column"),
    ("a,t\n1,\n", "t", "target column 't' is empty"),
    ("a,t\n1,\"unclosed\n", "t", "malformed CSV near line 2"),
])
def test_bad_csv(tmp_path, text, target, match):
    p = write(tmp_path / "bad.csv", text)
    with pytest.raises(GradvizError, match=match) as info:
        load_dataset(p, target=target)
    assert "\n" not in str(info.value)


def test_csv_regression_needs_numbers_and_utf8(tmp_path):
    p = write(tmp_path / "s.csv", "a,t\n1,x\n2,y\n")
    with pytest.raises(GradvizError, match="regression target must be numeric"):
        load_dataset(p, target="t", task="regression")
    (tmp_path / "bin.csv").write_bytes(b"a,t\n\xff\xfe,1\n")
    with pytest.raises(GradvizError, match="UTF-8"):
        load_dataset(str(tmp_path / "bin.csv"), target="t")
    with pytest.raises(GradvizError, match="no such file"):
        load_dataset(str(tmp_path / "absent.csv"), target="t")
