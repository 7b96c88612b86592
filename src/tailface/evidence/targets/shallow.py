"""``tailface reproduce shallow`` (issue 21): the methods of ``reproduce methods`` on the shallow set,
the profile's training set cut to at most 2 images per identity with every identity kept
(:data:`tailface.evidence.regimes.SHALLOW`, the cells ``MODEL@shallow``), where Semi-Siamese
Training's published claim is read.

The set is built once per seed by :mod:`tailface.data.perturb` (``tailface perturb --shallow 2``,
seed = the cell's) into ``OUT/regimes/shallow/seed<k>/data/``; its manifest is named (path and
sha256) in every cell's ``cell.json`` and archived with the cells. Groups on this set are a=3, b=2,
c=1: AB is softmax on the 2-image identities and ours clusters the 1-image ones. The page: the set,
SST's claim, then the methods page (:func:`tailface.evidence.targets.methods.method_page`) on the
shallow cells, and what cutting the set costs ABCD ("full-set ABCD > shallow ABCD").
"""

from __future__ import annotations

import hashlib

import numpy as np

from tailface.evidence import methods, regimes
from tailface.evidence.targets.methods import claims, method_page
from tailface.evidence.targets.registry import Claim, Inputs, Report, Target, register_target

SHALLOW = regimes.SHALLOW

# FaceX-Zoo (JDAI-CV/FaceX-Zoo, training_mode/README.md, section 3.3 "Shallow Face Learning"): MS-Celeb-1M-v1c
# (72,778 identities after removing those overlapping the test sets) cut to two random images per identity.
SST_CLAIM = (
    "**SST's published claim** (FaceX-Zoo, `training_mode/README.md`, section 3.3 \"Shallow Face Learning\"; "
    "MS-Celeb-1M-v1c with two randomly chosen images per identity; MobileFaceNet according to issue 21, the "
    "table does not name its backbone): conventional training LFW 91.77 / AgeDB 73.90 (CPLFW 61.56, CALFW 76.52) "
    "-> Semi-Siamese Training 99.38 / 93.60 (82.53, 91.78). Here the same question is asked of BLUFR on LFW "
    "(verification at FAR 0.1%, open-set identification), with the small network and the CPU budget: does a "
    "method trained on the shallow set beat plain softmax (ABCD) on it beyond noise?")


def shallow(model: str) -> str:
    return regimes.model_name(model, SHALLOW.name)


def set_lines(inputs: Inputs) -> tuple[list[str], dict]:
    """What the shallow set holds (its counts do not depend on the seed: min(n_c, 2) images per
    identity) and the manifests of the seeds built so far."""
    counts = inputs.faceset.class_counts()
    cap = int(SHALLOW.shallow or 0)
    head, tail = int((counts >= cap).sum()), int((counts < cap).sum())
    images = int(np.minimum(counts, cap).sum())
    found = {}
    for seed in inputs.results.seeds:
        for root in [r for r in (inputs.results.root, inputs.results.archive) if r is not None]:
            path = regimes.manifest_path(root, SHALLOW.name, seed)
            if path.is_file():
                found[seed] = {"manifest": path.relative_to(root).as_posix(),
                               "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
                break
    listed = "; ".join(f"seed {s}: `{m['manifest']}` (sha256 {m['sha256'][:12]})" for s, m in found.items())
    lines = [f"**The shallow set**: the profile's training set ({len(inputs.faceset):,} images, {len(counts):,} "
             f"identities) cut to at most {cap} images per identity, every identity kept (`tailface perturb "
             f"--shallow {cap}`, seed = the cell's): {images:,} images; {head:,} identities with {cap} images, "
             f"{tail:,} with fewer. Built once per seed into `OUT/regimes/{SHALLOW.name}/seed<k>/data/`; each cell's "
             f"`cell.json` names its manifest and sha256. Manifests: {listed or 'none built yet'}. LFW is never "
             "touched.", "",
             f"**Groups on this set**: a={SHALLOW.groups[0] if SHALLOW.groups else '-'}, "
             f"b={SHALLOW.groups[1] if SHALLOW.groups else '-'}, c={SHALLOW.groups[2] if SHALLOW.groups else '-'}. "
             f"The profile's groups (A >= {inputs.thresholds.a}, B >= {inputs.thresholds.b}, C >= "
             f"{inputs.thresholds.c}) would put every identity in D and leave AB (and so ours) without a head, so "
             f"here the head is the {head:,} identities with {cap} images (AB: softmax on them) and the tail the "
             f"{tail:,} with one (ours clusters them into super classes with AB's features). Every other model "
             "trains on every identity, as on the full set. Same configs as `tailface reproduce methods`: nothing "
             "re-tuned for the shallow set.", "", SST_CLAIM, ""]
    return lines, {"images": images, "identities": int(len(counts)), "with_max_images": head, "fewer": tail,
                   "max_images": cap, "groups": regimes.groups_block(SHALLOW), "manifests": found}


COST = Claim("full-set ABCD > shallow ABCD (what the cut costs)", "abcd", shallow("abcd"))


def write(target: Target, inputs: Inputs) -> Report:
    lines, data = set_lines(inputs)
    report = method_page(target, inputs, shallow, before=lines)
    return Report(report.markdown, {**report.data, "shallow_set": data})


register_target(Target(
    "shallow", "Methods on a shallow set (at most 2 images per identity): where SST's claim is read",
    models=(*methods.SHALLOW_MODELS, "abcd"), claims=(*claims(shallow), COST), write=write))
