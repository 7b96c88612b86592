"""Perturbed training sets: the failure modes of web-crawled long-tail data built from real faces
(issue 22). Three perturbations of a training set, each a pure function of a
:class:`~tailface.data.perturb.labelling.Labelling` (images with named identities) and a seed:

1. **split** (:mod:`.split`): a share of the images of a share of the A identities cut into new
   identities of 1-3 images, which join the tail: the same person in several tail identities.
2. **noise** (:mod:`.noise`): a share of the tail images (C, D) under a wrong identity, closed-set
   (another tail identity's label; sizes kept) or open-set (replaced by an image of a person held
   out of training).
3. **shallow** (:mod:`.shallow`): at most MAX images per identity.

:func:`perturb` composes them in this order (split, then noise, then shallow): noise may hit a
split-off identity (it is a tail identity), shallow caps what the others left; groups are those
of the class sizes when each step runs. The identities an evaluation protocol uses (LFW) are
never touched: a perturbation only changes the training set it is given.

Random streams: one numpy generator per purpose, never shared, so that one perturbation's draws do
not depend on whether (or with which arguments) another ran, except through the set it is given
(a noise draw depends on the split before it, never the other way round)::

    purpose              generator                    draw
    split                default_rng([seed, 2201])    permutation(A classes)[:round(share * |A|)]; per
                                                      drawn class (ascending): permutation(images)[:m],
                                                      m = max(1, round(images * n)), cut into chunks of
                                                      integers(1, 4) images
    outside identities   default_rng([seed, 2202])    permutation(tail classes not touched by the
                                                      split), taken until they hold the open-set images
    noisy images         default_rng([seed, 2203])    permutation(tail images left)[:n], the first
                                                      round(open * n) open-set; permutation(classes) as
                                                      the rank that orders the closed-set derangement
    shallow              default_rng([seed, 2204])    per class over MAX (ascending):
                                                      permutation(images)[:MAX] kept

The result is written as a list over the source's images plus a manifest of every change
(:mod:`.manifest`), opened by ``open_faceset`` (the ``FOLDER with perturbed.lst`` format row).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tailface.data.analysis import group_table, table_dict
from tailface.data.faceset import FaceSet
from tailface.data.groups import GroupThresholds
from tailface.data.perturb.labelling import Labelling
from tailface.data.perturb.manifest import FORMAT, VERSION, fingerprint
from tailface.data.perturb.noise import check_noise, tail_noise
from tailface.data.perturb.shallow import check_shallow, shallow
from tailface.data.perturb.split import check_split, split_head, split_names
from tailface.errors import ConfigError

ORDER = ("split", "noise", "shallow")


@dataclass(frozen=True)
class Perturbation:
    """What to perturb; a field left None is not applied."""

    split: tuple[float, float] | None = None  # (share of the A identities, share of their images)
    noise: tuple[float, float] | None = None  # (share of the tail images, open-set share of them)
    shallow: int | None = None  # at most this many images per identity
    seed: int = 0
    thresholds: GroupThresholds = GroupThresholds()

    def check(self) -> None:
        """ConfigError for a value out of range, or when nothing is to be perturbed."""
        if self.split is None and self.noise is None and self.shallow is None:
            raise ConfigError("nothing to perturb: give --split-head, --tail-noise or --shallow")
        if self.split is not None:
            check_split(*self.split)
        if self.noise is not None:
            check_noise(*self.noise)
        if self.shallow is not None:
            check_shallow(self.shallow)


def perturb(lab: Labelling, plan: Perturbation) -> tuple[Labelling, dict]:
    """``plan`` applied to ``lab`` in the order split, noise, shallow: the perturbed Labelling and
    the changes, ``{"split": section | None, "noise": ..., "shallow": ...}`` (each step's manifest
    section)."""
    plan.check()
    sections: dict = {step: None for step in ORDER}
    if plan.split is not None:
        lab, sections["split"] = split_head(lab, *plan.split, plan.thresholds, plan.seed)
    if plan.noise is not None:
        touched = split_names(sections["split"])
        protected = set(touched) | {name for names in touched.values() for name in names}
        lab, sections["noise"] = tail_noise(lab, *plan.noise, plan.thresholds, plan.seed, protected)
    if plan.shallow is not None:
        lab, sections["shallow"] = shallow(lab, plan.shallow, plan.seed)
    return lab, sections


def make_manifest(source: FaceSet, source_spec: str, plan: Perturbation, before: Labelling, after: Labelling,
                  sections: dict) -> dict:
    """The ``manifest.json`` document: the source (spec as written, size, :func:`fingerprint`),
    the plan, the changes of each step in ``order`` and the group tables before and after."""
    thresholds = plan.thresholds
    return {
        "format": FORMAT, "version": VERSION,
        "source": {"spec": source_spec, "images": len(source), "identities": source.num_classes,
                   "fingerprint": fingerprint(source)},
        "seed": plan.seed, "thresholds": asdict(thresholds),
        "order": list(ORDER), **sections,
        "result": {"images": len(after), "identities": len(after.names)},
        "groups": {"before": table_dict(group_table(before.counts(), thresholds), thresholds)["rows"],
                   "after": table_dict(group_table(after.counts(), thresholds), thresholds)["rows"]},
    }


__all__ = ["ORDER", "Labelling", "Perturbation", "make_manifest", "perturb"]
