"""A reader of the sktime / UEA-UCR ``.ts`` time-series classification format (our own; sktime is
never imported).

The format: ``#`` comment lines, ``@key value`` header lines, then ``@data`` and one case a
line, its dimensions separated by ``:``, the values of a dimension by ``,`` (``?`` is a missing
value), and — when ``@classLabel true ...`` — the class label as the last ``:`` field::

    @problemName Toy
    @univariate false
    @dimensions 2
    @equalLength false
    @classLabel true a b
    @data
    1,2,3:4,5,6:a
    7,8:9,10:b

Each case becomes a (length, dimensions) float array; the dimensions of one case must have the
same length (the sequence models read one vector per time step). Series with time stamps
(``@timeStamps true``) are not supported. Every inconsistency is a `UserError` naming the file
and the line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError

_BOOLEAN_KEYS = ("timestamps", "missing", "univariate", "equallength")


@dataclass
class TSData:
    """The cases of one .ts file: `series[i]` is a (length_i, dimensions) float32 array."""

    series: list[np.ndarray]
    labels: list[str]
    class_names: list[str]
    problem_name: str
    dimensions: int
    header: dict = field(default_factory=dict)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.series], dtype=np.int64)


def _bool(value: str, where: str, key: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise UserError(f"{where}: @{key} must be true or false, got {value!r}")
    return value.lower() == "true"


def _values(text: str, where: str) -> np.ndarray:
    try:
        return np.array(text.replace("?", "nan").split(","), dtype=np.float32)  # "?" is a missing value
    except ValueError:
        raise UserError(f"{where}: a value is not a number ({text[:40]!r})") from None


def read_ts(path: str | Path) -> TSData:
    """Parse a .ts classification file; a `UserError` (file and line) for anything inconsistent."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no .ts file {path}")
    header: dict = {}
    class_names: list[str] | None = None
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = raw.strip()
        where = f"{path.name} line {number}"
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise UserError(f"{where}: expected an @header line or @data before the data, got {line[:40]!r}")
            key, _, value = line[1:].partition(" ")
            key, value = key.lower(), value.strip()
            if key == "data":
                in_data = True
                if header.get("timestamps"):
                    raise UserError(f"{path.name}: series with time stamps (@timeStamps true) are not supported")
                continue
            if key in _BOOLEAN_KEYS:
                header[key] = _bool(value, where, key)
            elif key in ("dimensions", "serieslength"):
                if not value.isdigit() or int(value) < 1:
                    raise UserError(f"{where}: @{key} must be a positive integer, got {value!r}")
                header[key] = int(value)
            elif key == "classlabel":
                flag, *names = value.split()
                if _bool(flag, where, key):
                    if not names:
                        raise UserError(f"{where}: @classLabel true lists no class names")
                    class_names = names
                header[key] = class_names is not None
            else:
                header[key] = value
            continue
        fields = line.split(":")
        if class_names is not None:
            *fields, label = fields
            label = label.strip()
            if label not in class_names:
                raise UserError(f"{where}: class label {label!r} is not declared in @classLabel ({' '.join(class_names)})")
            labels.append(label)
        if not fields:
            raise UserError(f"{where}: a case with no values")
        expected = header.get("dimensions", 1 if header.get("univariate") else None)
        if expected is None and series:
            expected = series[0].shape[1]
        if expected is not None and len(fields) != expected:
            raise UserError(f"{where}: {len(fields)} dimensions, but the file declares or began with {expected} "
                            "(inconsistent dimensions)")
        dims = [_values(f, where) for f in fields]
        lengths = {len(d) for d in dims}
        if len(lengths) != 1:
            raise UserError(f"{where}: the dimensions of one case have different lengths {sorted(lengths)}")
        (length,) = lengths
        if header.get("equallength") and series and length != len(series[0]):
            raise UserError(f"{where}: length {length}, but @equalLength true and the first case has {len(series[0])}")
        if header.get("serieslength") and header.get("equallength") and length != header["serieslength"]:
            raise UserError(f"{where}: length {length}, but @seriesLength is {header['serieslength']}")
        series.append(np.stack(dims, axis=1))
    if not in_data:
        raise UserError(f"{path.name}: no @data section")
    if not series:
        raise UserError(f"{path.name}: no cases after @data")
    if class_names is None:
        raise UserError(f"{path.name}: no class labels (@classLabel true ...): not a classification file")
    return TSData(series=series, labels=labels, class_names=class_names,
                  problem_name=str(header.get("problemname", path.stem)), dimensions=series[0].shape[1], header=header)
