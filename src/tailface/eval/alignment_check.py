"""The crop geometry a model was trained on against the one its evaluation images have.

A face model evaluated on crops of another alignment template loses accuracy silently (issue
23: a network trained on dlib's 150x150 chips, 99.0 % on LFW cut to its own geometry, 89.3 % on
ArcFace crops). ``tailface eval`` and ``tailface embed`` therefore name both templates and warn
when they differ:

- the model's (:func:`model_template`): ``--template`` (the command line wins, as for the other
  preprocessing values), else what the model file records (checkpoint ``alignment_template``,
  ONNX ``tailface.template``), else ``arcface``, assumed, with a note saying so;
- the data's (:func:`data_template`): ``--data-template``, else the pack's ``alignment.json``
  (:mod:`tailface.data.alignment_record`; written by ``tailface align`` / ``tailface prepare``),
  else ``arcface``, assumed, with a note (packs written before issue 23, InsightFace ``.bin``
  files, which are ArcFace crops).

Each note is said once per run; a warning is one line on stderr naming both templates and where
each came from, and everything is kept in ``metrics.json`` under ``alignment``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from tailface.data.alignment_record import read_alignment
from tailface.data.templates import DEFAULT_TEMPLATE, check_template_name


@dataclass(frozen=True)
class TemplateOf:
    """A template and where it came from (``--template``, a file's record, or assumed)."""

    template: str
    origin: str
    assumed: bool = False

    def to_dict(self) -> dict:
        return {"template": self.template, "from": self.origin, "assumed": self.assumed}


def model_template(source: str, recorded: str | None, override: str | None = None) -> TemplateOf:
    """The template of the model file ``source`` (``recorded``: what it records, None when nothing)."""
    if override is not None:
        return TemplateOf(check_template_name(override), "--template")
    if recorded is not None:
        return TemplateOf(recorded, f"recorded in {source}")
    return TemplateOf(DEFAULT_TEMPLATE, f"{source} records no alignment template", assumed=True)


def data_template(pack: str, override: str | None = None) -> TemplateOf:
    """The template the images of ``pack`` (a dataset spec, folder or file) were aligned with."""
    if override is not None:
        return TemplateOf(check_template_name(override), "--data-template")
    record = read_alignment(pack)
    if record is not None:
        return TemplateOf(record["template"], f"recorded in {record['file']}")
    return TemplateOf(DEFAULT_TEMPLATE, f"{pack} records no alignment template", assumed=True)


@dataclass
class AlignmentCheck:
    """Collects the notes and warnings of one run; prints each once (to stderr, or ``say``)."""

    say: Callable[[str], None] | None = None
    model: TemplateOf | None = None
    data: dict[str, TemplateOf] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def _emit(self, kind: str, text: str, store: list[str]) -> None:
        if text in store:
            return
        store.append(text)
        line = f"tailface: {kind}: {text}"
        if self.say is not None:
            self.say(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def set_model(self, model: TemplateOf) -> None:
        """The model's template (its note, when assumed, comes with the first comparison: a run on
        unaligned images only, such as the synthetic set, says nothing)."""
        self.model = model

    def compare(self, pack: str, data: TemplateOf) -> str | None:
        """Record the data template of ``pack``; the warning text when it differs from the model's."""
        self.data[pack] = data
        if self.model is not None and self.model.assumed:
            self._emit("note", f"{self.model.origin}; assuming {self.model.template}", self.notes)
        if data.assumed:
            self._emit("note", f"{data.origin}; assuming {data.template}", self.notes)
        if self.model is None or self.model.template == data.template:
            return None
        text = (f"the model was trained on {self.model.template} crops ({self.model.origin}) but {pack} holds "
                f"{data.template} crops ({data.origin}); its figures there are for a crop geometry it was not "
                f"trained on (align the data with --template {self.model.template}, or pass --template / "
                f"--data-template if a record is wrong)")
        self._emit("warning", text, self.warnings)
        return text

    def to_dict(self) -> dict:
        return {"model": None if self.model is None else self.model.to_dict(),
                "data": {pack: t.to_dict() for pack, t in self.data.items()},
                "notes": list(self.notes), "warnings": list(self.warnings)}
