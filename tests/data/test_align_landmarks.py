import numpy as np
import pytest

from tailface.data.landmarks import COORD_COLUMNS, read_landmarks
from tailface.errors import DataError

HEADER = "identity,file,score," + ",".join(COORD_COLUMNS)


def write(tmp_path, lines, name="lm.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_rows_and_empty_rows(tmp_path):
    path = write(tmp_path, [HEADER, "7,a.jpg,0.99," + ",".join(str(v) for v in range(10)),
                            "8,b.jpg,,,,,,,,,,,"])
    table = read_landmarks(path)
    assert table.files == ["a.jpg", "b.jpg"] and table.identities == ["7", "8"]
    np.testing.assert_array_equal(table.points[0], np.arange(10.0).reshape(5, 2))
    assert np.isnan(table.points[1]).all() and table.found.tolist() == [True, False]
    assert table.scores[0] == pytest.approx(0.99) and np.isnan(table.scores[1])
    np.testing.assert_array_equal(table.mean_points(), table.points[0])


def test_lookup_by_path_then_by_unique_file_name(tmp_path):
    rows = [HEADER, "p,x.jpg,1," + ",".join(["1"] * 10), "q,x.jpg,1," + ",".join(["2"] * 10),
            "q,y.jpg,1," + ",".join(["3"] * 10)]
    table = read_landmarks(write(tmp_path, rows))
    got = table.lookup(["q/x.jpg", "y.jpg", "x.jpg", "z.jpg", "other/y.jpg"])
    assert got[0, 0, 0] == 2 and got[1, 0, 0] == 3 and got[4, 0, 0] == 3
    assert np.isnan(got[2]).all()  # x.jpg alone is ambiguous
    assert np.isnan(got[3]).all()


@pytest.mark.parametrize("lines,match", [
    (["identity,file,score,left_eye_x"], r"lm\.csv:1: missing column"),
    ([HEADER, "7,a.jpg,1," + ",".join(["1"] * 9) + ",oops"], r"lm\.csv:2: column mouth_right_y: 'oops'"),
    ([HEADER, "7,a.jpg,1,1,2"], r"lm\.csv:2: 5 fields"),
    ([HEADER, "7,a.jpg,1,1,,,,,,,,,"], r"lm\.csv:2: some landmark fields are empty"),
    ([HEADER, "7,,1," + ",".join(["1"] * 10)], r"lm\.csv:2: empty file name"),
    ([HEADER, "7,a.jpg,1," + ",".join(["nan"] * 10)], r"lm\.csv:2: .*finite"),
    ([], "empty file"),
])
def test_malformed_csv_names_file_and_line(tmp_path, lines, match):
    with pytest.raises(DataError, match=match):
        read_landmarks(write(tmp_path, lines))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.csv"):
        read_landmarks(tmp_path / "nope.csv")
