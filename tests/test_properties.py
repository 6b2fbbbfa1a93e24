"""Property tests (hypothesis): whatever a user feeds the params parser, ``--set`` or a task's data
loader (random YAML, truncated files, flipped bytes, other encodings), the answer is the parsed
value or one ``UserError`` line naming the file or key, never another exception."""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import write_movielens
from orch_charrnn import data as charrnn_data
from orch_collab import build_task
from orch_collab import data as collab_data
from orch_ulmfit import data as ulmfit_data
from orchestrator.errors import UserError
from orchestrator.params import load_task_params

TASK = build_task()
FIELDS = sorted(TASK.params_model.model_fields)
QUICK = settings(max_examples=int(__import__("os").environ.get("ORCH_PROPERTY_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)
keys = st.one_of(st.sampled_from(FIELDS), st.sampled_from(["sweep", "data", "nope", "y_range", "charrnn"]),
                 st.text(string.ascii_letters + "._", min_size=1, max_size=10))


def one_line(call) -> object:
    """What ``call()`` returns, or None after a one-line UserError; anything else fails the test."""
    try:
        return call()
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc), repr(str(exc))
        return None


def params_file(text: str | bytes) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="orch-prop-"))
    path = folder / "params.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    return path


@QUICK
@given(section=st.dictionaries(keys, values, max_size=5), sweep=st.one_of(st.none(), values))
def test_any_params_section_is_parsed_or_refused_in_one_line(section, sweep):
    doc = {"collab": {**section, **({"sweep": sweep} if sweep is not None else {})}}
    path = params_file(yaml.safe_dump(doc, allow_unicode=True))
    one_line(lambda: load_task_params(TASK, path, tasks=("collab", "charrnn")))


@QUICK
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_any_params_file_bytes_are_parsed_or_refused_in_one_line(text):
    path = params_file(text)
    one_line(lambda: load_task_params(TASK, path, tasks=("collab",)))


@QUICK
@given(overrides=st.lists(st.tuples(keys, st.text(max_size=20)).map(lambda kv: f"{kv[0]}={kv[1]}")
                          | st.text(max_size=20), max_size=4))
def test_any_set_values_are_parsed_or_refused_in_one_line(overrides):
    path = params_file("collab:\n  epochs: 2\n")
    got = one_line(lambda: load_task_params(TASK, path, overrides, tasks=("collab", "charrnn")))
    if got is not None:
        params, _ = got
        assert params.epochs > 0 and params.lr > 0  # what passed is valid


def corrupted(good: bytes):
    """A valid file truncated, with bytes flipped, or re-encoded."""
    cut = st.integers(0, len(good)).map(lambda n: good[:n])
    flipped = st.lists(st.tuples(st.integers(0, max(0, len(good) - 1)), st.integers(0, 255)), min_size=1,
                       max_size=6).map(lambda edits: _flip(good, edits))
    encoded = st.sampled_from(["utf-16", "latin-1", "cp1252"]).map(
        lambda enc: good.decode("utf-8").encode(enc, "replace"))
    return st.one_of(cut, flipped, encoded)


def _flip(good: bytes, edits) -> bytes:
    out = bytearray(good)
    for at, byte in edits:
        if out:
            out[at % len(out)] = byte
    return bytes(out)


GOOD_RATINGS = (write_movielens(Path(tempfile.mkdtemp()) / "ml", n_users=6, n_items=5, per_user=3)
                / "ratings.csv").read_bytes()


@QUICK
@given(ratings=corrupted(GOOD_RATINGS))
def test_a_corrupted_movielens_file_loads_or_is_refused_in_one_line(ratings):
    folder = Path(tempfile.mkdtemp(prefix="orch-prop-"))
    (folder / "ratings.csv").write_bytes(ratings)
    loaded = one_line(lambda: collab_data.load(folder))
    if loaded is not None:
        assert len(loaded.frame) > 0 and len(loaded.user_ids) > 0 and len(loaded.item_ids) > 0


GOOD_TEXT = ("KING.\nWhat say you, lord? Speak, and be brief.\n\n" * 30).encode("utf-8")


@QUICK
@given(text=corrupted(GOOD_TEXT))
def test_a_corrupted_corpus_reads_or_is_refused_in_one_line(text):
    path = params_file(text).with_name("play.txt")
    path.write_bytes(text)

    def read_and_split():
        body, source = charrnn_data.read_text(str(path))
        vocab = charrnn_data.Vocab.build(body)
        return charrnn_data.split(vocab.encode(body), 0.1, 0.1, block=100, seed=0, source=source)

    one_line(read_and_split)


GOOD_CSV = b'2,"Loved it, truly"\n1,Awful\n2,Fine\n1,"Bad, bad"\n'


@QUICK
@given(rows=corrupted(GOOD_CSV))
def test_a_corrupted_labelled_csv_loads_or_is_refused_in_one_line(rows):
    folder = Path(tempfile.mkdtemp(prefix="orch-prop-"))
    (folder / "classes.txt").write_text("neg\npos\n")
    (folder / "train.csv").write_bytes(rows)
    loaded = one_line(lambda: ulmfit_data.load_csv_folder(folder))
    if loaded is not None:
        assert set(loaded.labels) <= {0, 1} and len(loaded.labels) == len(loaded.docs)


@pytest.mark.parametrize("broken", [b"", b"\xff\xfe", b"userId,movieId\n1,2\n"])
def test_known_bad_movielens_files_are_named(tmp_path, broken):
    (tmp_path / "ratings.csv").write_bytes(broken)
    with pytest.raises(UserError, match="ratings.csv"):
        collab_data.load(tmp_path)
