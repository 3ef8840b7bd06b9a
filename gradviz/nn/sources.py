"""The files a training run reads (a data file, a model file), recorded by absolute path and
content hash in its checkpoints, so that `evaluate` and `train --resume` reopen only what the run
read, unchanged, and never a path a checkpoint was edited to name."""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from gradviz.errors import GradvizError

if TYPE_CHECKING:
    from gradviz.nn.training import TrainConfig

# -- files a run reads ----------------------------------------------------------------------------
# A checkpoint records the data and model files a run read: absolute paths and a SHA-256 of their
# contents. A later command opens such a path from a checkpoint only when the user names it on
# the command line, or when the file still has the recorded fingerprint (a checkpoint edited to
# name another file, /etc/passwd say, is refused without that file being parsed or shown).
BUILTIN_DATA = ("and", "or", "xor", "spiral", "moons", "circles", "digits", "heights", "mnist",
                 "fashion-mnist", "cifar10")


def _data_location(spec: str) -> tuple[str, list[Path]] | None:
    """(the spec with an absolute path, the files it reads) for a data spec naming files; None
    for a built-in or fetched data set."""
    name, _, rest = spec.partition(":")
    key = name.strip().lower()
    if key in ("mnist", "fashion-mnist"):
        if not rest.strip():
            return None
        from gradviz.data.idx import MNIST_FILES, find_mnist_file

        directory = os.path.abspath(os.path.expanduser(rest.strip()))
        files = [find_mnist_file(Path(directory), role) for role in MNIST_FILES]
        return f"{key}:{directory}", [f for f in files if f is not None]
    if key == "cifar10":
        if not rest.strip():
            return None
        from gradviz.data.cifar import source_files

        location = os.path.abspath(os.path.expanduser(rest.strip()))
        return f"{key}:{location}", source_files(location)
    if key in BUILTIN_DATA:
        return None
    path = os.path.abspath(os.path.expanduser(spec.strip()))
    return path, [Path(path)]


def _model_location(name: str) -> tuple[str, list[Path]] | None:
    """(absolute path, [the file]) for a model file; None for a named model."""
    from gradviz.nn.models import MODELS

    if name in MODELS or not (name.lower().endswith((".json", ".yaml", ".yml", ".onnx"))
                              or os.sep in name):
        return None
    path = os.path.abspath(os.path.expanduser(name))
    return path, [Path(path)]


_LOCATIONS = {"data": _data_location, "model": _model_location}


def absolute_config(config: TrainConfig) -> TrainConfig:
    """`config` with the data and model files named by absolute paths."""
    changes = {}
    for field_name, locate in _LOCATIONS.items():
        found = locate(getattr(config, field_name))
        if found is not None:
            changes[field_name] = found[0]
    return dataclasses.replace(config, **changes) if changes else config


def absolute_data(spec: str) -> str:
    found = _data_location(spec)
    return spec if found is None else found[0]


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def source_records(config: TrainConfig, data: bool = True, model: bool = True) -> dict:
    """{"data": record or None, "model": record or None}: each file-based source's absolute
    spec and SHA-256, for a checkpoint (`data`/`model` False: the caller passed its own)."""
    out = {}
    for field_name, locate in _LOCATIONS.items():
        found = locate(getattr(config, field_name)) if {"data": data, "model": model}[
            field_name] else None
        if found is None:
            out[field_name] = None
            continue
        spec, files = found
        try:
            out[field_name] = {"spec": spec, "sha256": _fingerprint(files)}
        except OSError as exc:
            raise GradvizError(f"cannot read {field_name} {spec}: {exc.strerror or exc}") \
                from None
    return out


def trusted_source(meta: dict, field_name: str, checkpoint) -> str:
    """The data spec or model name of a checkpoint's configuration, safe to open: a built-in
    name as it is; a file only at its recorded absolute path and with its recorded SHA-256."""
    value = meta["config"][field_name]
    if _LOCATIONS[field_name](value) is None:
        return value
    record = (meta.get("sources") or {}).get(field_name)
    what = "data" if field_name == "data" else "model file"
    if not isinstance(record, dict) or not isinstance(record.get("spec"), str) \
            or not isinstance(record.get("sha256"), str):
        raise GradvizError(f"checkpoint {checkpoint} names the {what} {value!r} without a "
                           f"fingerprint of it; name it with --{field_name}")
    if _LOCATIONS[field_name](value)[0] != record["spec"]:
        raise GradvizError(f"corrupt checkpoint {checkpoint}: its {what} {value!r} is not the one "
                           "it has a fingerprint of; name it with --" + field_name)
    found = _LOCATIONS[field_name](record["spec"])
    try:
        same = found is not None and found[1] and _fingerprint(found[1]) == record["sha256"]
    except OSError:
        same = False
    if not same:
        raise GradvizError(f"the {what} {record['spec']} that checkpoint {checkpoint} was "
                           f"trained on is missing or has changed; name it with --{field_name} "
                           "to use it anyway")
    return record["spec"]
