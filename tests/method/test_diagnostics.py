import numpy as np
import pytest
import torch

from tailface.cli.main import main as cli_main
from tailface.data.faceset import InMemoryFaceSet
from tailface.errors import DataError
from tailface.method.diagnostics import checkpoint_row_groups, norms_by_group, norms_table, plot_norms
from tailface.method.dispersion import DispersionHead
from tailface.method.partition import Partition


def test_norms_by_group_hand_computed():
    weight = np.array([[3, 4], [0, 1], [0, 2], [6, 8]], float)  # norms 5, 1, 2, 10
    stats = norms_by_group(weight, np.array(["A", "C", "C", "A"]))
    assert stats["A"] == {"mean": 7.5, "std": 2.5, "median": 7.5, "count": 2}
    assert stats["C"]["mean"] == 1.5 and stats["C"]["median"] == 1.5
    assert set(stats) == {"A", "C"}
    assert "| m | A | 2 | 7.5000 | 2.5000 | 7.5000 |" in norms_table({"m": stats})


def small_set():
    counts = [22, 12, 5, 2, 1, 1]  # A B C D D D
    labels = np.repeat(np.arange(len(counts)), counts)
    return InMemoryFaceSet(np.zeros((len(labels), 2, 2, 3), np.uint8), labels)


def save(path, head_state):
    torch.save({"model": {}, "meta": {}, "head": head_state}, path)
    return path


def test_checkpoint_row_groups_plain_and_dispersion(tmp_path):
    faceset = small_set()
    plain = save(tmp_path / "plain.pt", {"weight": torch.arange(12.0).reshape(6, 2)})
    weight, groups = checkpoint_row_groups(plain, faceset)
    assert list(groups) == ["A", "B", "C", "D", "D", "D"]
    part = Partition.from_faceset(faceset)
    head = DispersionHead(2, part.num_head, np.array([0, 1, 1, 0]))
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0], [2, 0], [3, 0], [4, 0], [5, 0], [6, 0]]))
    disp = save(tmp_path / "disp.pt", head.state_dict())
    weight, groups = checkpoint_row_groups(disp, faceset)
    assert list(groups) == ["A", "B", "C", "D", "D", "D"]
    np.testing.assert_array_equal(weight[:, 0], [1, 2, 3, 4, 5, 6])
    wrong = save(tmp_path / "wrong.pt", {"weight": torch.zeros(4, 2)})
    with pytest.raises(DataError, match="4 rows"):
        checkpoint_row_groups(wrong, faceset)
    assert plot_norms(tmp_path / "n.png", {"x": norms_by_group(weight, groups)}).stat().st_size > 1000


def test_norms_cli(tmp_path, capsys):
    from PIL import Image

    counts = [22, 12, 5, 2, 1, 1]
    for c, n in enumerate(counts):
        (tmp_path / "set" / f"id{c}").mkdir(parents=True)
        for j in range(n):
            Image.fromarray(np.full((4, 4, 3), 10 * c, np.uint8)).save(tmp_path / "set" / f"id{c}" / f"{j}.png")
    weight = torch.tensor([[2.0, 0], [0, 2], [1, 0], [0, 1], [1, 0], [0, 1]])
    ckpt = save(tmp_path / "c.pt", {"weight": weight})
    data = str(tmp_path / "set")
    assert cli_main(["norms", str(ckpt), "--data", data, "--plot", str(tmp_path / "p.png")]) == 0
    out = capsys.readouterr().out
    assert "| A | 1 | 2.0000 |" in out and "| D | 3 | 1.0000 |" in out
    assert (tmp_path / "p.png").is_file()
    bad = save(tmp_path / "bad.pt", {"weight": torch.ones(9, 2)})
    assert cli_main(["norms", str(bad), "--data", data]) == 2
    assert "9 rows" in capsys.readouterr().err
    assert cli_main(["norms", str(tmp_path / "missing.pt"), "--data", data]) == 2
    assert "missing.pt" in capsys.readouterr().err
