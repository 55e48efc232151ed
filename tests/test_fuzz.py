"""Fuzzing the two readers of untrusted files, `nbbp.load` and the command line's CSV reader:
whatever the bytes, a reader returns or raises its one documented error (ValueError for load,
CommandError for the CSV reader), never another exception, a crash or a hang.

CI runs a short pass (NBBP_FUZZ_EXAMPLES, default 150 inputs per test); a long run is
``NBBP_FUZZ_EXAMPLES=100000 pytest tests/test_fuzz.py`` under a time limit. Inputs that once
found a bug are kept below as regression examples.
"""

import io
import os
import zipfile

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import nbbp
from nbbp.cli import CommandError, _target_name, read_table
from nbbp.tabular import Contract, TableError

EXAMPLES = int(os.environ.get("NBBP_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 150,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _model_bytes():
    """A saved model with every kind of entry: batch normalisation, Adam's state, masks' room."""
    import tempfile

    net = nbbp.Network([3, 4, 2], activation="tanh", batch_norm=True, seed=0)
    net.fit(np.random.default_rng(0).normal(size=(8, 3)), np.arange(8) % 2, epochs=1,
            optimizer="adam", batch_size=4)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.npz")
        net.save(path)
        with open(path, "rb") as f:
            return f.read()


MODEL = _model_bytes()


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _zipped(members, compression):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buf.getvalue()


# Mutations: bytes of the whole file flipped, cut or inserted; or one member's bytes (its .npy
# header included) flipped, cut or replaced, the archive rebuilt so that the zip stays valid and
# the mutation reaches load's own checks.
edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8)


@st.composite
def mutated_models(draw):
    if draw(st.booleans()):
        data = bytearray(MODEL)
        for position, value in draw(edits):
            data[position % len(data)] = value
        if draw(st.booleans()):
            data = data[:draw(st.integers(0, len(data)))]
        return bytes(data)
    members = _members(MODEL)
    name = draw(st.sampled_from(sorted(members)))
    content = bytearray(members[name])
    kind = draw(st.sampled_from(["flip", "cut", "replace"]))
    if kind == "flip":
        for position, value in draw(edits):
            if content:
                content[position % len(content)] = value
    elif kind == "cut":
        content = content[:draw(st.integers(0, len(content)))]
    else:
        content = bytearray(draw(st.binary(max_size=300)))
    members[name] = bytes(content)
    return _zipped(members, draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])))


def _with_broken_header(name):
    """The model with member ``name``'s .npy header dict unterminated (its "}" a NUL byte):
    NumPy's header parser raised tokenize.TokenError, which escaped load (found by this fuzzer
    in its first seconds)."""
    members = _members(MODEL)
    members[name] = members[name].replace(b"}", b"\x00", 1)
    return _zipped(members, zipfile.ZIP_STORED)


@FUZZ
@given(data=mutated_models())
@example(data=b"")
@example(data=MODEL[:100])
@example(data=_with_broken_header("activation.npy"))
@example(data=_with_broken_header("theta.npy"))
def test_load_of_any_bytes_returns_a_network_or_raises_value_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "model.npz"
    path.write_bytes(data)
    try:
        net = nbbp.load(path)
    except ValueError:
        return
    assert isinstance(net, nbbp.Network)
    net.forward(np.zeros((2, net.sizes[0]), dtype=net.dtype), training=False)


cells = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.integers(-10**30, 10**30).map(str),
                  st.text(max_size=6))


@FUZZ
@given(rows=st.lists(st.lists(cells, min_size=0, max_size=5), max_size=8),
       delimiter=st.sampled_from([",", ";", "\t"]), bom=st.booleans(),
       target=st.one_of(st.none(), st.integers(-3, 6), st.text(max_size=3)),
       raw=st.one_of(st.none(), st.binary(max_size=200)))
@example(rows=[], delimiter=",", bom=True, target=-1, raw=None)
# a header (its last cell empty, so not a number) wider than the rows, and the target its empty
# name: np.delete raised IndexError (found by the 10-minute run)
@example(rows=[["0.0", "0.0", ""], ["0.0", "0.0"]], delimiter=",", bom=False, target="", raw=None)
@example(rows=[], delimiter=",", bom=False, target=None, raw=b"\xff\xfe\x00a")
@example(rows=[], delimiter=",", bom=False, target=None, raw=b"\r\x00\x80")  # csv.Error locating it
def test_the_csv_reader_returns_arrays_or_raises_its_error(tmp_path_factory, rows, delimiter,
                                                               bom, target, raw):
    path = tmp_path_factory.mktemp("fuzz") / "data.csv"
    if raw is not None:
        path.write_bytes(raw)
    else:
        text = "\n".join(delimiter.join(row) for row in rows) + "\n"
        path.write_bytes(text.encode("utf-8-sig" if bom else "utf-8", errors="surrogatepass"))
    try:
        table = read_table(path)
        _contract, X, y = Contract.fit(table, _target_name(table, None if target is None
                                                           else str(target)))
    except (CommandError, TableError):
        return
    assert isinstance(X, np.ndarray)
    assert X.ndim == 2
    assert np.isfinite(X).all()
    assert isinstance(y, np.ndarray)
    assert len(y) == len(X) == table.n_rows
