"""Reading a YAML config file into a mapping, with errors that name the file."""

from __future__ import annotations

import difflib
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


def unknown_key(where: str, key, known) -> ConfigError:
    """The error for an unknown key: the valid keys, and the closest one when there is one."""
    known = sorted(str(k) for k in known)
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{where}: unknown key {key!r}{hint} (valid keys: {', '.join(known)})")
