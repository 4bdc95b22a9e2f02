"""Result objects without a daemon: a Comparison's rows to CSV and to pandas (pandas is
optional and not installed by the project, so a stand-in module checks what the client
hands it; the real DataFrame constructor takes the same records and columns)."""
import csv
import io
import sys
import types

import pytest

from hybridd import protocol as P
from hybridd.results import COLUMNS, Comparison, Row


def wire_row(**kw):
    r = {name: 0 for name, _, _, _ in P.ROW_FIELDS}
    r.update(kw)
    return r


def comparison():
    rows = [Row(wire_row(backend=1, threads=1, mode=1, n=1000, median_ns=2000000)),
            Row(wire_row(backend=2, threads=2, mode=1, n=1000, median_ns=1000000,
                         flags=P.ROW_FLAG_NOGIL))]
    return Comparison("pi", rows, job_id=7, n=1000)


class FakeFrame:
    def __init__(self, data, columns):
        self.data, self.columns = list(data), list(columns)


def test_to_pandas_hands_every_row_and_column_to_a_dataframe(monkeypatch):
    fake = types.ModuleType("pandas")
    fake.DataFrame = FakeFrame
    monkeypatch.setitem(sys.modules, "pandas", fake)
    c = comparison()
    df = c.to_pandas()
    assert isinstance(df, FakeFrame)
    assert df.columns == COLUMNS
    assert df.data == c.to_dicts()
    assert [d["backend"] for d in df.data] == ["serial", "native"]
    assert [d["median_ns"] for d in df.data] == [2000000, 1000000]


def test_to_pandas_without_pandas_raises_importerror(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # what a missing module looks like
    with pytest.raises(ImportError):
        comparison().to_pandas()


def test_a_row_says_whether_the_daemon_chose_it_and_what_it_predicted():
    chosen = Row(wire_row(backend=5, threads=2, flags=P.ROW_FLAG_AUTO, predicted_ns=41000000,
                          median_ns=43000000))
    explored = Row(wire_row(backend=2, threads=2, flags=P.ROW_FLAG_AUTO | P.ROW_FLAG_EXPLORE))
    named = comparison().rows[1]
    assert (chosen.auto, chosen.explore, chosen.predicted_ns) == (True, False, 41000000)
    assert (explored.auto, explored.explore, explored.predicted_ns) == (True, True, 0)
    assert (named.auto, named.explore, named.predicted_ns) == (False, False, 0)
    assert chosen.backend == "process" and not chosen.nogil
    d = chosen.to_dict()
    assert (d["predicted_ns"], d["auto"], d["explore"]) == (41000000, True, False)


def test_to_csv_has_a_header_and_one_line_per_row(tmp_path):
    c = comparison()
    path = tmp_path / "rows.csv"
    text = c.to_csv(str(path))
    assert path.read_text(encoding="utf-8") == text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0].keys()) == COLUMNS
    assert [(r["backend"], r["threads"]) for r in rows] == [("serial", "1"), ("native", "2")]
    assert c.speedups() == [1.0, 2.0]
