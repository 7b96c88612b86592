import pytest

from tailface.errors import ConfigError
from tailface.yaml_config import read_yaml


def test_reads_mapping_and_empty_file(tmp_path):
    (tmp_path / "a.yaml").write_text("train: {epochs: 3}\n")
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(tmp_path / "a.yaml") == {"train": {"epochs": 3}}
    assert read_yaml(tmp_path / "empty.yaml") == {}


@pytest.mark.parametrize("text, message", [
    ("train: [1, 2\n", "invalid YAML"),
    ("- just\n- a list\n", "expected a mapping"),
])
def test_errors_name_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"bad\.yaml.*{message}"):
        read_yaml(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml: config file not found"):
        read_yaml(tmp_path / "missing.yaml")
