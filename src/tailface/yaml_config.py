"""Reading a YAML config file into a mapping, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import yaml

from tailface.errors import ConfigError


def read_yaml(path) -> dict:
    """A YAML file's mapping ({} when empty); ConfigError naming the file when missing or invalid."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of blocks, got {type(doc).__name__}")
    return doc
