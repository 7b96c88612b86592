"""The shipped experiment configs (package data): ``baselines/...`` and ``method/...``.

``resolve_config(text)`` accepts a path to any YAML file, or the name of a shipped config with
or without the ``configs/`` prefix and ``.yaml`` suffix (``method/celeba``,
``configs/baselines/celeba/abcd.yaml``), so the commands in the docs work from any folder and
from an installed wheel.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tailface.errors import ConfigError

DEFAULT = "method/synthetic"


def _root() -> Path:
    return Path(str(resources.files("tailface.configs")))


def shipped_configs() -> dict[str, Path]:
    """``{name: path}`` of every shipped config, e.g. ``"baselines/celeba/abcd"``."""
    root = _root()
    return {p.relative_to(root).with_suffix("").as_posix(): p for p in sorted(root.rglob("*.yaml"))}


def is_shipped(path: str | Path) -> bool:
    """Whether ``path`` is one of the shipped configs (their relative ``data/NAME`` paths name the
    prepared sets: :func:`tailface.paths.resolve_prepared_spec`)."""
    return Path(path).resolve().is_relative_to(_root().resolve())


def describe(path: Path) -> str:
    """The first comment line of a config file (its one-line description)."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def resolve_config(text: str | Path | None) -> Path:
    """The YAML file named by ``text`` (see the module docstring); None: the default config."""
    text = DEFAULT if text is None else str(text)
    path = Path(text)
    if path.is_file():
        return path
    name = text.removeprefix("configs/").removesuffix(".yaml")
    shipped = shipped_configs()
    if name in shipped:
        return shipped[name]
    raise ConfigError(f"{text}: config file not found (not a file, nor a shipped config; "
                      f"`tailface run --list-configs` lists them)")
