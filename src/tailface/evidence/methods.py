"""The methods of ``tailface reproduce methods`` and ``tailface reproduce shallow`` (issue 21), as one
table of data: :data:`METHODS`, one :class:`Method` per row, in the pages' order.

A row names a cell model (:mod:`tailface.evidence.cells`), its label, what it changes, its source,
where its hyper-parameters come from, and, for a model cells.py does not define already, the
shipped config it is trained as (:class:`Shipped`: one config per profile family, the experiment
kind of that config, and the cell it starts from, if any). Adding a method is one row:

- a different head: ``Method("vpl", "VPL", ..., shipped=baseline("vpl"))`` (the shipped
  ``configs/baselines/celeba/vpl.yaml`` and ``configs/baselines/vpl.yaml``);
- a different experiment kind with its own shipped configs: ``Method("sst", "SST", ...,
  shipped=Shipped("sst/celeba", "sst/synthetic", kind="semi-siamese"))``; a kind that starts from
  another cell's model names it (``base="subcenter-arcface"``: its block's ``base`` is set to that
  cell's checkpoint of the same seed, and that cell is trained first).

The row's cell then exists (``cells.MODELS``, ``cells.CELL_KINDS``), with its shallow version
``MODEL@shallow`` (:data:`tailface.evidence.regimes.SHALLOW`: the same config on the profile's set
cut to at most 2 images per identity), and both pages read it (a claim against ABCD and one
against ours on each). A row that ``combines`` ours with another method is "ours combined with it"
(the pages say which). ``tailface study --methods`` reads the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

from tailface.evidence import regimes
from tailface.heads.base import margin_heads


@dataclass(frozen=True)
class Shipped:
    """A model trained as a shipped config (``tailface.configs.resolve_config`` names): ``celeba``
    for the profiles of the CelebA family (cpu, gpu), ``synthetic`` for the built-in data's; the
    config's experiment ``kind`` (its block decides it; stated here so that a cell's folders are
    known without reading the config); ``base``: the cell whose final checkpoint of the same seed
    goes into the kind block's ``base`` key (None: the config trains from scratch)."""

    celeba: str
    synthetic: str
    kind: str = "baseline"
    base: str | None = None

    def config(self, family: str) -> str:
        return self.celeba if family == "celeba" else self.synthetic


def baseline(name: str) -> Shipped:
    """A baseline config (a head, a sampler): ``baselines/celeba/<name>`` and ``baselines/<name>``."""
    return Shipped(f"baselines/celeba/{name}", f"baselines/{name}")


@dataclass(frozen=True)
class Method:
    model: str  # the cell model (cells.MODELS)
    label: str  # the pages' label
    what: str  # what it changes, in a few words
    source: str  # the paper
    hyper: str  # where its hyper-parameters come from (the CelebA family's shipped configs)
    shipped: Shipped | None = None  # how a model new to cells.py is trained; None: cells.py defines it
    combines: str | None = None  # "ours combined with" this method (a row of the table)


TUNED_ARCFACE = ("s 16, m 0.35, ArcFace's best development mean on held-out training identities "
                 "(tune --profile cpu-heldout, 3 seeds)")
METHODS: tuple[Method, ...] = (
    Method("abcd", "ABCD", "plain softmax on every identity: the reference", "-",
           "the shared budget of the CelebA baselines (20 epochs, lr 0.1, milestones 12 and 16): nothing to tune"),
    Method("ab", "AB", "plain softmax on the head identities only (A + B), the tail left out", "Ma et al. 2020",
           "as ABCD"),
    Method("ours", "Ours", "aggregate-and-disperse: the tail clustered into super classes with AB's features, "
           "then dispersed", "Ma et al. 2020",
           "the shipped method config; its choices probed on BLUFR's development split (probes), defaults kept"),
    Method("center-loss", "Center loss", "softmax + lambda x the distance to a moving class centre",
           "Wen et al., ECCV 2016", "the paper's lambda 0.003, alpha 0.5: not tuned"),
    Method("arcface", "ArcFace", "additive angular margin on the target logit", "Deng et al., CVPR 2019",
           TUNED_ARCFACE + "; the paper's s 64, m 0.5 collapsed here"),
    Method("arcface-ours", "ArcFace + ours", "ours with ArcFace's head in its prototype and dispersion stages "
           "(clustering with the AB cell's features)", "Ma et al. 2020, Table 3",
           "ArcFace's (" + TUNED_ARCFACE + ") and ours' shipped settings", combines="arcface"),
    Method("logit-adjusted", "Logit-adjusted", "tau log(class prior) added to the training logits",
           "Menon et al., ICLR 2021", "tau 1 (the paper's default): not tuned"),
    Method("ldam-drw", "LDAM-DRW", "margin proportional to n_c^(-1/4), re-weighting deferred to 80% of training",
           "Cao et al., NeurIPS 2019",
           "max_m 0.5, beta 0.9999 (the paper's); s 16 taken from ArcFace's grid: not tuned for LDAM"),
    Method("subcenter-arcface", "Sub-center ArcFace", "K = 3 sub-centres per class, the closest takes ArcFace's "
           "margin", "Deng et al., ECCV 2020", "K 3 (the paper's); " + TUNED_ARCFACE + ": not tuned again",
           shipped=baseline("subcenter_arcface")),
    Method("adaface", "AdaFace", "margin adapted to the feature norm (image quality), running batch statistics",
           "Kim et al., CVPR 2022",
           "m 0.4, h 0.333, momentum 0.01 (the paper's); s 16 taken from ArcFace's grid: not tuned again",
           shipped=baseline("adaface")),
    Method("sst", "SST", "probe + momentum gallery network, a prototype queue instead of the classifier",
           "Du et al., ECCV 2020", "CosFace s 32, m 0.35 (FaceX-Zoo's), momentum 0.995, queue 4,096 (the paper's 0.999 "
           "scaled to this run's length; configs/method/celeba_sst.yaml): not tuned",
           shipped=Shipped("method/celeba_sst", "method/sst", kind="semi-siamese")),
    Method("subcenter-drop", "Sub-center ArcFace + drop", "sub-center ArcFace, then the images farther than 75 "
           "degrees from their class's dominant sub-centre dropped and ArcFace retrained", "Deng et al., ECCV 2020",
           "K 3, 75 degrees (the paper's); " + TUNED_ARCFACE + ": not tuned again",
           shipped=Shipped("method/celeba_subcenter_drop", "method/subcenter_drop", kind="subcenter-drop")),
    Method("vpl", "VPL", "the latest feature of a recently seen class mixed into its weight, class-aware sampling",
           "Deng et al., CVPR 2021", "lambda 0.15, delta 200 (the authors'); " + TUNED_ARCFACE + ": not tuned again",
           shipped=baseline("vpl")),
)

MODELS: tuple[str, ...] = tuple(m.model for m in METHODS)
BY_MODEL = {m.model: m for m in METHODS}
SHIPPED: dict[str, Shipped] = {m.model: m.shipped for m in METHODS if m.shipped is not None}
REFERENCES = ("abcd", "ours")  # every other row is compared with these, on the paired seeds
SHALLOW_MODELS: tuple[str, ...] = tuple(regimes.model_name(m, regimes.SHALLOW.name) for m in MODELS)
LABELS = {**{m.model: m.label for m in METHODS},
          **{regimes.model_name(m.model, regimes.SHALLOW.name): m.label for m in METHODS}}

# Where the hyper-parameters come from, for both pages (issue 21, item 6).
HYPER_NOTE = (
    "**Hyper-parameters: the scale and margin checked on held-out identities, the rest the papers'.** Each method "
    "runs as shipped (the CelebA family's configs, column *hyper-parameters*). The scale s 16 and ArcFace's margin "
    "m 0.35, which every margin head here takes, are the best development mean of ArcFace's grid on held-out "
    "training identities (`tailface reproduce tune --profile cpu-heldout`: 20% of the identities with >= 2 images "
    "held out of training, 3 seeds; docs/evidence/reproduce-cpu-heldout/tune.md gives each setting's interval "
    "against it). The method-specific values (sub-centres, AdaFace's h, VPL's lambda and delta, SST's momentum "
    "and queue, LDAM's max_m, center loss's lambda, the drop angle) are the papers' and were not tuned here: a grid "
    "per method on held-out identities costs 3 cells per setting. A verdict below is the method at that setting, "
    "not at its best on this data.")


def combinable_note() -> str:
    """Which rows combine ours with a method, and for which methods the combination is not defined."""
    combined = [m for m in METHODS if m.combines]
    others = [m.label for m in METHODS if m.model not in (*REFERENCES, "ab") and not m.combines
              and m.model not in {c.combines for c in combined}]
    parts = ", ".join(f"{m.label} (ours combined with {BY_MODEL[m.combines].label})" for m in combined if m.combines)
    return (f"Ours combined with a method: {parts or 'none'}. Ours carries a method along only where its stages can: "
            f"a head whose margin the dispersion head applies (`heads.margin_heads()`: {', '.join(margin_heads())}). "
            f"Not defined for {', '.join(others) or 'no other row'}: their heads add terms of their own that the "
            "dispersion stage does not carry (a centre, a class prior, per-class margins, sub-centres, a "
            "norm-adapted margin), or they are an experiment kind of their own, whose stages do not compose "
            "with ours'.")
