"""The data contract of a model trained on a table: which columns are its features and which is
its target, the names of its classes, and how missing values are filled and inputs scaled,
fitted on the training rows only. It travels in the model file beside the network, so that a
model predicts from a table by column name and answers with class names. NumPy alone; pandas
and pyarrow are not needed.

    table = nbbp.tabular.read_csv("iris.csv")
    contract, X, y = nbbp.tabular.Contract.fit(table, target="species")
    net = nbbp.Network([X.shape[1], 16, len(contract.classes)]).fit(X, y)
    nbbp.tabular.save("iris.npz", net, contract)

    net, contract = nbbp.tabular.load("iris.npz")
    contract.class_names(net.predict(contract.inputs(nbbp.tabular.read_csv("new.csv"))))

Errors name the file, the row (a file line, counting the header as line 1) and the column.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import pathlib
import re
import zipfile
from dataclasses import dataclass, replace

import numpy as np

# Cells that hold no value (after stripping spaces)
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
# A target of whole numbers >= 0 with at most this many distinct values is a class label
MAX_CLASSES = 100


class TableError(ValueError):
    """A table that cannot be read or used: the message names the file, row and column."""


@dataclass(frozen=True)
class Table:
    """A table: its column names and, per column, a 1-D array of its cells, str (from a .csv
    file) or numbers (from Parquet or arrays; NaN is a missing value). ``source`` names it in
    errors, where a row is called by ``unit`` and numbered from ``first_line``, or by
    ``lines`` (a row number per row). ``named`` is False for columns that are only numbered
    (a .csv without a header row, or arrays); ``shown`` labels the columns in errors, for
    arrays ("X[:, 2]", "y")."""

    header: list[str]
    columns: dict[str, np.ndarray]
    source: str = "the table"
    first_line: int = 2
    unit: str = "line"
    named: bool = True
    lines: np.ndarray | None = None
    shown: tuple[str, ...] | None = None

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def line(self, row: int) -> int:
        return int(self.lines[row]) if self.lines is not None else self.first_line + row

    def at(self, row: int) -> str:
        """Where row ``row`` is, for an error: "line 7" of a .csv file, "row 6" of Parquet."""
        return f"{self.unit} {self.line(row)}"

    def name(self, column: str) -> str:
        """A column, for an error: its name, or its number from 1 when columns are unnamed
        (or its label in ``shown``)."""
        position = self.header.index(column)
        if self.shown is not None:
            return self.shown[position]
        return repr(column) if self.named else str(position + 1)

    def take(self, rows) -> Table:
        """The table of these rows (an index array), keeping their line numbers for errors."""
        rows = np.asarray(rows, dtype=np.intp)
        lines = np.array([self.line(r) for r in rows], dtype=np.int64)
        return replace(self, columns={k: v[rows] for k, v in self.columns.items()}, lines=lines)

    def renamed(self, names: list[str]) -> Table:
        """The same columns, in order, under these names."""
        if len(names) != len(self.header):
            raise ValueError(f"{len(names)} names for {len(self.header)} columns")
        return replace(self, header=list(names), columns=dict(zip(names, self.columns.values())))


# Byte-order marks, longest first (UTF-32's little-endian mark begins with UTF-16's).
BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                    (codecs.BOM_UTF16_BE, "utf-16"))


def decode(path, encoding=None):
    """The text of a .csv file, in ``encoding`` if given (a UTF-8 byte-order mark is still not
    data), else as its byte-order mark says, else UTF-8. Bytes that do not decode are reported
    by line and column."""
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as error:
        raise TableError(f"{path}: not a readable .csv file ({error.strerror})") from None
    marked = next((name for mark, name in BYTE_ORDER_MARKS if data.startswith(mark)), None)
    if encoding is None:
        chosen, why = marked or "utf-8", "a byte-order mark says so" if marked else "the default"
    else:
        chosen, why = encoding, "--encoding"
        if codecs.lookup(encoding).name == "utf-8" and marked == "utf-8-sig":
            chosen = "utf-8-sig"
    try:
        return data.decode(chosen)
    except UnicodeDecodeError as error:
        # the line (csv's line ends: \r\n, \r or \n) and the column (by its commas) of the bytes
        lines = re.split(r"\r\n|\r|\n", data[:error.start].decode(chosen, errors="replace"))
        line, column = len(lines), lines[-1].count(",") + 1
        hint = ("; --encoding names the file's encoding, e.g. --encoding latin-1"
                if encoding is None and not marked else "")
        raise TableError(f"{path}: line {line}, column {column}: bytes "
                         f"{data[error.start:error.end].hex(' ')} are not {chosen} text "
                         f"({error.reason}; {chosen} is {why}){hint}") from None


def csv_rows(path, encoding=None):
    """(rows, lines): the rows of a .csv file that hold any text, as lists of cells, and the
    file line each starts on (blank lines and multi-line quoted cells counted, as an editor
    shows them), its text decoded as ``decode`` does."""
    text = decode(path, encoding)
    rows, lines = [], []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        ended = 0  # the last line of the previous row
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append(row)
                lines.append(ended + 1)
            ended = reader.line_num
    except csv.Error as error:
        raise TableError(f"{path}: line {ended + 1}: not a readable .csv row ({error})") from None
    return rows, lines


# a cell quoted in an error message is cut to this many characters
QUOTED_CELL = 40


def quoted(cell):
    """A cell for an error message: its repr, cut short if long."""
    cell = str(cell)
    return repr(cell) if len(cell) <= QUOTED_CELL else repr(cell[:QUOTED_CELL]) + "..."


def _is_value(cell):
    """A number or a missing value: what a data row, not a header, holds in a number column."""
    return cell.strip().lower() in MISSING or _is_float(cell)


def _looks_like_header(rows):
    """Whether the first of these rows names the columns: some cell of it is text over a
    column of numbers, or it holds no number at all (a table of text columns, names first)."""
    first, below = rows[0], rows[1:101]
    if all(_is_value(cell) for cell in first):
        return False
    for c, cell in enumerate(first):
        if not _is_value(cell) and below and all(c < len(row) and _is_value(row[c])
                                                 for row in below):
            return True
    return not any(_is_float(cell) for cell in first)


def read_csv(path: str | os.PathLike, encoding: str | None = None,
             header: bool | None = True) -> Table:
    """A .csv file as a Table (``csv_rows``). ``header`` True: the first row names the
    columns; False: there is none, and the columns are named by number from 0 ("0", "1", ...);
    None: guess, as a person would: the first row is a header when a cell of it is text over
    a column of numbers, or when it holds no number. Rows without text are skipped. Refuses
    an empty file, a header without rows, duplicate or empty column names, rows of another
    width than the first, and bytes that are not the encoding's, naming where."""
    path = pathlib.Path(path)
    rows, lines = csv_rows(path, encoding)
    if not rows:
        raise TableError(f"{path}: the file is empty")
    if header is None:
        header = _looks_like_header(rows)
    names = ([cell.strip() for cell in rows[0]] if header
             else [str(c) for c in range(len(rows[0]))])
    data, data_lines = (rows[1:], lines[1:]) if header else (rows, lines)
    if not data:
        raise TableError(f"{path}: the file has a header and no data rows")
    for c, name in enumerate(names):
        if not name:
            raise TableError(f"{path}: line {lines[0]}, column {c + 1}: the header names no "
                             "column")
        if name in names[:c]:
            raise TableError(f"{path}: line {lines[0]}, column {c + 1}: the header names "
                             f"{quoted(name)} twice")
    for row, line in zip(data, data_lines):
        if len(row) != len(names):
            raise TableError(f"{path}: line {line} has {len(row)} columns; line {lines[0]}"
                             f"{' (the header)' if header else ''} has {len(names)}")
        if any("\x00" in cell for cell in row):
            c = next(c for c, cell in enumerate(row) if "\x00" in cell)
            raise TableError(f"{path}: line {line}, column {c + 1}: {quoted(row[c].strip())} "
                             "holds a NUL character: not text a .csv file holds")
    columns = {}
    for c, name in enumerate(names):  # object arrays: a long cell costs only its own length
        column = np.empty(len(data), dtype=object)
        column[:] = [row[c].strip() for row in data]
        columns[name] = column
    return Table(names, columns, str(path), named=header,
                 lines=np.array(data_lines, dtype=np.int64))


def read_parquet(path: str | os.PathLike) -> Table:
    """A Parquet file as a Table (needs pyarrow: ``pip install "nbbp[parquet]"``). Number
    columns stay numbers (a null is NaN), text and categorical columns become text (a null is
    missing), booleans become True/False; other types are refused, naming the column. Rows
    are numbered from 1 in errors."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        raise TableError(f"{path}: reading Parquet needs pyarrow: pip install "
                         "'nbbp[parquet]'") from None
    if not pathlib.Path(path).is_file():
        raise TableError(f"{path}: no such file")
    try:
        data = pq.read_table(path)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise TableError(f"{path}: not a readable Parquet file ({error})") from None
    names = [str(name) for name in data.column_names]
    if not names or data.num_rows == 0:
        raise TableError(f"{path}: the file has no rows")
    columns = {}
    for c, (name, arrow_column) in enumerate(zip(names, data.columns)):
        if not name.strip() or name in names[:c]:
            raise TableError(f"{path}: column {c + 1}: the name {name!r} is empty or repeated")
        column, kind = arrow_column, arrow_column.type
        if pa.types.is_dictionary(kind):
            column, kind = column.cast(kind.value_type), kind.value_type
        if pa.types.is_integer(kind) and column.null_count == 0:
            columns[name] = column.to_numpy()
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            columns[name] = pc.fill_null(column.cast(pa.float64()), np.nan).to_numpy()
        elif pa.types.is_boolean(kind) and column.null_count == 0:
            columns[name] = column.to_numpy()
        elif pa.types.is_boolean(kind):  # True, False, and "" for a null: as a .csv holds them
            columns[name] = _text_column(["" if v is None else str(v)
                                          for v in column.to_pylist()])
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            columns[name] = _text_column(pc.fill_null(column, "").to_pylist())
        else:
            raise TableError(f"{path}: column {name!r} holds {kind} values; nbbp reads "
                             "numbers, text and booleans")
    return Table(names, columns, str(path), first_line=1, unit="row")


def _text_column(cells):
    column = np.empty(len(cells), dtype=object)
    column[:] = [cell.strip() for cell in cells]
    return column


# Text cells read as numbers besides the numbers themselves (case ignored)
BOOLEANS = {"true": "1", "false": "0"}


def _numbers(table, name):
    """Column ``name`` as float64, NaN where a cell is missing; a cell that is neither a number
    nor missing is an error naming its row and column. NumPy parses the column at once; only
    a column that fails is read again cell by cell, to name the cell."""
    column = table.columns[name]
    if column.dtype.kind in "biuf":
        values = column.astype(np.float64)
        infinite = np.flatnonzero(np.isinf(values))
        if infinite.size:
            raise TableError(f"{table.source}: {table.at(infinite[0])}, column {table.name(name)}: "
                             f"{values[infinite[0]]} is not a finite number")
        return values
    cells = column.tolist()  # str, not np.str_ (whose repr is np.str_('x'))
    lowered = [cell.lower() for cell in cells]
    missing = np.array([cell in MISSING for cell in lowered], dtype=bool)
    try:
        values = np.array(["nan" if gap else BOOLEANS.get(cell, cell)
                           for cell, gap in zip(lowered, missing)], dtype=np.float64)
    except ValueError:
        values = None
    if values is not None and np.isfinite(values[~missing]).all():
        return values
    values = np.empty(len(cells))
    for r, cell in enumerate(cells):
        if lowered[r] in MISSING:
            values[r] = np.nan
            continue
        try:
            values[r] = float(BOOLEANS.get(lowered[r], cell))
        except ValueError:
            raise TableError(f"{table.source}: {table.at(r)}, column {table.name(name)}: "
                             f"{quoted(cell)} is not a number") from None
        if not np.isfinite(values[r]):
            raise TableError(f"{table.source}: {table.at(r)}, column {table.name(name)}: "
                             f"{quoted(cell)} is not a finite number")
    return values


def _cells(table, name):
    """Column ``name`` as a list of str (labels): numbers as ``_label_text`` names them, a
    missing number as ""."""
    column = table.columns[name]
    if column.dtype.kind == "b":
        return [str(bool(v)) for v in column]
    if column.dtype.kind in "iu":
        return [str(int(v)) for v in column]
    if column.dtype.kind == "f":
        values = _numbers(table, name)
        return ["" if np.isnan(v) else _label_text(float(v)) for v in values]
    return column.tolist()


def _is_numeric(cells):
    try:
        values = np.array([float(c) for c in cells if c.lower() not in MISSING])
    except ValueError:
        return False
    return bool(np.isfinite(values).all())


def _check_target(table, target, task):
    """The target's name (default: the last column), checked with ``task``."""
    if target is None:
        target = table.header[-1]
    if target not in table.columns:
        raise TableError(f"{table.source}: no column {target!r} to be the target (the "
                         f"columns are {table.header})")
    if len(table.header) < 2:
        raise TableError(f"{table.source}: needs a feature column besides the target")
    if task not in (None, "classification", "regression"):
        raise ValueError(f"task must be None, 'classification' or 'regression'; got {task!r}")
    return target


def _labels(table, target, task):
    """(classes, y) of the target column: class names and indices for classification, or
    (None, numbers) for regression. ``task`` None guesses: classes for text labels, or for
    whole numbers >= 0 with at most MAX_CLASSES distinct values."""
    labels = _cells(table, target)
    for r, cell in enumerate(labels):
        if cell.lower() in MISSING:
            raise TableError(f"{table.source}: {table.at(r)}, column {table.name(target)}: the "
                             "target is missing")
    numeric = _is_numeric(labels)
    if task is None:
        whole = numeric and all(float(c) >= 0 and float(c) == int(float(c)) for c in labels)
        task = ("classification" if not numeric
                or (whole and len({float(c) for c in labels}) <= MAX_CLASSES)
                else "regression")
    if task == "regression":
        if not numeric:
            raise TableError(f"{table.source}: column {target!r} holds text; regression "
                             "needs numbers")
        return None, _numbers(table, target)
    if numeric:  # 2, 10, 2.0 sort as numbers, and 2 and 2.0 are one class
        values = sorted({float(c) for c in labels})
        index = {v: i for i, v in enumerate(values)}
        return ([_label_text(v) for v in values],
                np.array([index[float(c)] for c in labels], dtype=np.int64))
    classes = sorted(set(labels))
    return classes, np.searchsorted(np.array(classes), labels).astype(np.int64)


def task_of(table: Table, target: str | None = None) -> str:
    """"classification" or "regression": what Contract.fit makes of the target column when
    no task is given (classes for text labels, or for whole numbers >= 0 with at most
    MAX_CLASSES distinct values)."""
    classes, _ = _labels(table, _check_target(table, target, None), None)
    return "regression" if classes is None else "classification"


def split(table: Table, target: str | None = None, test_fraction: float = 0.2, seed: int = 0,
          task: str | None = None) -> tuple[Table, Table]:
    """(train, test) tables: ceil(test_fraction n) rows held out at random, stratified for
    classification (each class in proportion), ``target`` and ``task`` as in Contract.fit.
    The rows are those of scikit-learn's ``train_test_split(..., test_size=test_fraction,
    random_state=seed, stratify=y)`` (or without ``stratify`` for regression), so that a split
    can be reproduced there; unlike it, a class of one row stays in train. Rows keep their
    order, and their line numbers for errors."""
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1); got {test_fraction}")
    target = _check_target(table, target, task)
    classes, y = _labels(table, target, task)
    n = table.n_rows
    n_test = int(np.ceil(test_fraction * n))
    if n_test == 0 or n_test == n:
        return table, table.take(np.zeros(0, dtype=np.intp))
    rng = np.random.RandomState(seed)  # scikit-learn's generator, for its rows
    if classes is None:
        test = rng.permutation(n)[:n_test]
    else:
        counts = np.bincount(y, minlength=len(classes))
        members = np.split(np.argsort(y, kind="stable"), np.cumsum(counts)[:-1])
        n_train = _allot(counts, n - n_test, rng)
        n_held = _allot(counts - n_train, n_test, rng)
        moved = (n_train == 0) & (counts > 0)  # a class keeps a row to be learned from
        n_train[moved] += 1
        n_held[moved] -= 1
        test = np.concatenate([rows[rng.permutation(len(rows))][k:k + t]
                               for rows, k, t in zip(members, n_train, n_held)])
    is_test = np.zeros(n, dtype=bool)
    is_test[test] = True
    return table.take(np.flatnonzero(~is_test)), table.take(np.flatnonzero(is_test))


def _allot(counts, draws, rng):
    """``draws`` rows shared among classes in proportion to ``counts``: each class its whole
    share, then one more to the classes of the largest fractions, ties broken at random."""
    exact = counts / counts.sum() * draws
    given = np.floor(exact).astype(np.int64)
    left = draws - int(given.sum())
    fractions = exact - given
    for value in np.unique(fractions)[::-1]:
        if left <= 0:
            break
        tied = np.flatnonzero(fractions == value)
        chosen = rng.choice(tied, size=min(len(tied), left), replace=False)
        given[chosen] += 1
        left -= len(chosen)
    return given


@dataclass(frozen=True)
class Contract:
    """What a model takes and gives, fitted on its training table.

    Attributes
    ----------
    features : list of str
        The input columns, in the order of the network's inputs.
    target : str
        The target column.
    classes : list of str or None
        The class names, in the order of the outputs, for a classifier; None for regression.
    mean, scale : ndarray or None
        Standardisation, x' = (x - mean) / scale per feature, fitted on the training rows (a
        constant column gets scale 1, so nothing divides by 0); None without it.
    fill : ndarray or None
        The value that replaces a missing input per feature (the training mean), or None:
        missing inputs are then an error.
    """

    features: list[str]
    target: str
    classes: list[str] | None
    mean: np.ndarray | None
    scale: np.ndarray | None
    fill: np.ndarray | None

    @classmethod
    def fit(cls, table: Table, target: str | None = None, standardize: bool = True,
            impute: str | None = None, task: str | None = None):
        """(contract, X, y) for a training table. ``target`` (default: the last column) names
        the target. ``task`` "classification" or "regression" (default: classes for text
        labels, or whole numbers >= 0 with at most 100 distinct values). ``impute`` None stops
        at a missing input, naming its row and column; "mean" fills it with the column's mean.
        X is float64, standardized unless ``standardize`` is False; y holds class indices (in
        the order of ``contract.classes``) or numbers."""
        target = _check_target(table, target, task)
        if impute not in (None, "mean"):
            raise ValueError(f"impute must be None or 'mean'; got {impute!r}")
        features = [name for name in table.header if name != target]
        raw = np.column_stack([_numbers(table, name) for name in features])
        fill = None
        if impute == "mean":
            with np.errstate(invalid="ignore"):
                fill = np.nanmean(np.where(np.isnan(raw).all(axis=0), 0.0, raw), axis=0)
        mean = scale = None
        if standardize:
            observed = np.where(np.isnan(raw), fill if fill is not None else 0.0, raw)
            # in units of each column's largest |x|, so that squares of 1e200 do not overflow
            largest = np.abs(observed).max(axis=0)
            unit = np.where(largest > 0, largest, 1.0)
            mean = (observed / unit).mean(axis=0) * unit
            std = (observed / unit).std(axis=0) * unit
            scale = np.where(std > 0, std, 1.0)
        classes, y = _labels(table, target, task)
        contract = cls(features, target, classes, mean, scale, fill)
        return contract, contract._scaled(raw, table), y

    # ------------------------------------------------------------------------- applying it
    def inputs(self, table: Table) -> np.ndarray:
        """X for a table, its feature columns found by name (other columns, the target among
        them, are ignored), filled and scaled as in training."""
        missing = [name for name in self.features if name not in table.columns]
        if missing:
            raise TableError(f"{table.source}: no column {missing[0]!r}, which the model takes "
                             f"as input (it takes {self.features})")
        raw = np.column_stack([_numbers(table, name) for name in self.features])
        return self._scaled(raw, table)

    def targets(self, table: Table) -> np.ndarray:
        """y for a labelled table: class indices (a class the model does not know is an error
        naming its row), or numbers."""
        if self.target not in table.columns:
            raise TableError(f"{table.source}: no column {self.target!r}, the model's target")
        if self.classes is None:
            y = _numbers(table, self.target)
            if np.isnan(y).any():
                r = int(np.flatnonzero(np.isnan(y))[0])
                raise TableError(f"{table.source}: {table.at(r)}, column "
                                 f"{table.name(self.target)}: the target is missing")
            return y
        labels = _cells(table, self.target)
        numeric = all(_is_float(c) for c in self.classes)
        index = {name: i for i, name in enumerate(self.classes)}
        y = np.empty(len(labels), dtype=np.int64)
        for r, cell in enumerate(labels):
            key = _label_text(float(cell)) if numeric and _is_float(cell) else cell
            if key not in index:
                raise TableError(f"{table.source}: {table.at(r)}, column "
                                 f"{table.name(self.target)}: {quoted(cell)} is not a class the "
                                 f"model knows ({self.classes})")
            y[r] = index[key]
        return y

    def class_names(self, labels) -> np.ndarray:
        """The names of class indices (a classifier's predict), as an array of str."""
        if self.classes is None:
            raise ValueError("a regression contract has no class names")
        return np.array(self.classes)[np.asarray(labels)]

    def _scaled(self, raw, table):
        missing = np.isnan(raw)
        if missing.any():
            if self.fill is None:
                r, c = np.argwhere(missing)[0]
                raise TableError(f"{table.source}: {table.at(r)}, column "
                                 f"{table.name(self.features[c])}: the value is missing "
                                 "(a model trained with impute='mean', or nbbp train --impute "
                                 "mean, fills missing values with the training mean)")
            raw = np.where(missing, self.fill, raw)
        if self.mean is not None:
            with np.errstate(over="ignore"):
                raw = raw / self.scale - self.mean / self.scale
            if not np.isfinite(raw).all():
                r, c = np.argwhere(~np.isfinite(raw))[0]
                raise TableError(f"{table.source}: {table.at(r)}, column "
                                 f"{table.name(self.features[c])}: the value is too large to "
                                 f"standardize (the column's scale is {self.scale[c]:.3g})")
        return np.ascontiguousarray(raw)

    # ---------------------------------------------------------------------- in a model file
    def to_json(self) -> str:
        def listed(a):
            return None if a is None else [float(v) for v in a]
        return json.dumps({"features": self.features, "target": self.target,
                           "classes": self.classes, "mean": listed(self.mean),
                           "scale": listed(self.scale), "fill": listed(self.fill)})

    @classmethod
    def from_json(cls, text: str) -> Contract:
        """A contract from to_json's text, every field checked (a model file is input)."""
        try:
            fields = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as error:
            raise ValueError(f"its data contract is not JSON ({error})") from None
        if not isinstance(fields, dict) or set(fields) != {"features", "target", "classes",
                                                           "mean", "scale", "fill"}:
            raise ValueError("its data contract does not have the fields of one")
        features, target, classes = fields["features"], fields["target"], fields["classes"]
        if (not isinstance(features, list) or not features
                or not all(isinstance(f, str) for f in features) or not isinstance(target, str)
                or (classes is not None and (not isinstance(classes, list) or not all(
                    isinstance(c, str) for c in classes)))):
            raise ValueError("its data contract's column or class names are not lists of text")
        arrays: dict[str, np.ndarray | None] = {}
        for name in ("mean", "scale", "fill"):
            value = fields[name]
            if value is None:
                arrays[name] = None
                continue
            if (not isinstance(value, list) or len(value) != len(features)
                    or not all(isinstance(v, (int, float)) for v in value)):
                raise ValueError(f"its data contract's {name} is not one number per feature")
            array = np.array(value, dtype=np.float64)
            if not np.isfinite(array).all():
                raise ValueError(f"its data contract's {name} holds NaN or inf")
            arrays[name] = array
        if (arrays["mean"] is None) != (arrays["scale"] is None) or (
                arrays["scale"] is not None and np.any(arrays["scale"] <= 0)):
            raise ValueError("its data contract's scaling is not a mean and a positive scale")
        return cls(features, target, classes, arrays["mean"], arrays["scale"], arrays["fill"])


def _label_text(value):
    """A numeric class label's name: 2 for 2 and 2.0, else the float's shortest repr (so
    that no two labels share a name)."""
    return str(int(value)) if value.is_integer() else repr(value)


def _is_float(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


CONTRACT_ENTRY = "data_contract"


def save(path: str | os.PathLike, net, contract: Contract) -> None:
    """Save ``net`` with ``contract``: Network.save's file, plus the contract as one more
    entry, written atomically as that file is. The contract must fit the network: as many
    features as inputs, and as many classes as outputs (or one output for two classes)."""
    from . import persistence
    from ._validation import check_contract_fits

    check_contract_fits(net, contract)
    net._check_finite_parameters("save")
    entries = persistence.entries(net, net._theta, net._mask_theta, net._stats, net._opt)
    entries[CONTRACT_ENTRY] = np.array(contract.to_json())
    persistence.write(path, entries)


def load(path: str | os.PathLike):
    """(network, contract) from a file written by ``save``; the contract is None for a file
    written by Network.save alone."""
    from .network import Network

    net = Network.load(path)
    with open(path, "rb") as f, zipfile.ZipFile(f) as archive:
        if CONTRACT_ENTRY + ".npy" not in archive.namelist():
            return net, None
    try:
        with np.load(path, allow_pickle=False) as data:
            text = data[CONTRACT_ENTRY]
        if text.shape != () or text.dtype.kind != "U":
            raise ValueError("its data contract is not one text entry")
        contract = Contract.from_json(str(text))
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"{os.fspath(path)} is not a valid nbbp model file: {error}") from None
    from ._validation import check_contract_fits

    try:
        check_contract_fits(net, contract)
    except ValueError as error:
        raise ValueError(f"{os.fspath(path)} is not a valid nbbp model file: {error}") from None
    return net, contract
