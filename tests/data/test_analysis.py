import json

import numpy as np
import pytest

from tailface.cli.main import main
from tailface.data.analysis import format_table, group_table, plot_class_sizes
from tailface.data.groups import GroupThresholds


def rows_by_name(counts, thresholds=GroupThresholds()):
    return {r.group: r for r in group_table(np.asarray(counts), thresholds)}


def test_boundaries_fall_in_the_right_groups():
    # 3|4 splits D|C, 9|10 splits C|B, 20|21 splits B|A
    rows = rows_by_name([3, 4, 9, 10, 20, 21])
    assert (rows["D"].identities, rows["D"].images, rows["D"].min, rows["D"].max) == (1, 3, 3, 3)
    assert (rows["C"].identities, rows["C"].images, rows["C"].min, rows["C"].max) == (2, 13, 4, 9)
    assert (rows["B"].identities, rows["B"].images, rows["B"].min, rows["B"].max) == (2, 30, 10, 20)
    assert (rows["A"].identities, rows["A"].images, rows["A"].min, rows["A"].max) == (1, 21, 21, 21)
    assert (rows["head"].identities, rows["head"].images) == (3, 51)
    assert (rows["tail"].identities, rows["tail"].images) == (3, 16)
    assert (rows["total"].identities, rows["total"].images, rows["total"].min, rows["total"].max) == (6, 67, 3, 21)


def test_shares_by_hand_and_sum_to_100():
    counts = [1, 1, 2, 5, 12, 30, 50]  # 101 images, 7 identities
    rows = rows_by_name(counts)
    assert rows["D"].images == 4 and rows["A"].images == 80
    assert rows["A"].image_share == pytest.approx(100 * 80 / 101)
    assert rows["D"].identity_share == pytest.approx(100 * 3 / 7)
    groups = [rows[g] for g in "ABCD"]
    assert sum(r.image_share for r in groups) == pytest.approx(100)
    assert sum(r.identity_share for r in groups) == pytest.approx(100)
    assert rows["head"].image_share + rows["tail"].image_share == pytest.approx(100)
    assert rows["total"].image_share == pytest.approx(100)


def test_empty_group_and_zero_count_classes():
    rows = rows_by_name([0, 25, 30, 0])
    assert rows["B"].identities == 0 and rows["B"].min is None and rows["B"].image_share == 0
    assert rows["total"].identities == 2  # classes without images are not identities
    assert "-" in format_table(group_table(np.array([25, 30])))


def test_custom_thresholds():
    rows = rows_by_name([1, 2, 3, 5], GroupThresholds(a=5, b=3, c=2))
    assert [rows[g].identities for g in "ABCD"] == [1, 1, 1, 1]


def test_rejects_bad_counts():
    with pytest.raises(ValueError):
        group_table(np.array([1.5, 2.0]))
    with pytest.raises(ValueError):
        group_table(np.array([-1, 3]))


def test_plot_is_written(tmp_path):
    path = plot_class_sizes(np.array([1, 1, 2, 5, 12, 30]), tmp_path / "sizes.png")
    assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_on_a_folder(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "faces"
    for name, n in [("alice", 22), ("bob", 4), ("carol", 1)]:
        (root / name).mkdir(parents=True)
        for k in range(n):
            Image.new("RGB", (8, 8), (k, 0, 0)).save(root / name / f"{k}.png")
    out_json = tmp_path / "t.json"
    assert main(["analyze", str(root), "--json", str(out_json), "--plot", str(tmp_path / "p.png")]) == 0
    text = capsys.readouterr().out
    assert "27 images" in text and "[22,22]" in text
    rows = {r["group"]: r for r in json.loads(out_json.read_text())["rows"]}
    assert rows["A"]["images"] == 22 and rows["C"]["images"] == 4 and rows["D"]["images"] == 1
    assert (tmp_path / "p.png").is_file()


def test_cli_rejects_bad_thresholds(capsys):
    assert main(["analyze", "synthetic", "--thresholds", "4,10"]) == 2
    assert "--thresholds" in capsys.readouterr().err
