"""Where the tail hurts (issue 22): AB, ABCD and ours in each regime of
:mod:`tailface.evidence.regimes` (the clean set, a split head, tail label noise, both, 3x longer).

Per regime: one row per model (VR@FAR=0.1%, DIR@FAR=1%, mean +- std over seeds) and its claims,
paired over seeds (``tables.claims_table``): "the tail hurts: AB > ABCD", "ours repairs: ours >
ABCD", "ours > AB", the same "repairs" claim for the strongest method of ``reproduce methods``
(``regimes.REPAIR``, once chosen), and for a perturbed or longer regime its ABCD against the clean
ABCD and each of its models against the clean AB (a split leaves AB fewer head images than the clean AB). One
plot, ``OUT/regimes.png``: DIR@FAR=1% per regime and model with the 95% t-interval of the mean. In
the split regimes, the ours cell's clustering read against the manifest
(:mod:`tailface.evidence.split_reunion`): the share of split-off identities in a super class with
a sibling, against chance, per seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tailface.evidence import cells, regimes, tables
from tailface.evidence.stats import Cell, PairedDifference, paired_difference
from tailface.evidence.tables import Metric, Results
from tailface.evidence.targets.registry import Claim, Inputs, Report, Target, register_target

DIR = tables.CLAIM_METRICS[1]  # DIR@FAR=1%: the map and the plot


def label(model: str) -> str:
    """The house's label of a model (``tables.LABELS``), ours in lower case as this page has always written it."""
    return "ours" if model == "ours" else tables.LABELS.get(model, model)


def map_claims(mapped: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    """The map's questions, as (text, a, b) for "a > b": does the tail hurt, does ours repair it,
    does ours beat its base, and does each other model of ``mapped`` (the strongest method) repair it."""
    repairs = [(f"{label(m)} > ABCD ({label(m)} repairs)", m, "abcd") for m in mapped if m not in regimes.MODELS]
    return (("AB > ABCD (the tail hurts)", "ab", "abcd"), ("ours > ABCD (ours repairs)", "ours", "abcd"),
            ("ours > AB", "ours", "ab"), *repairs)


def claims_of(regime: str, mapped: tuple[str, ...] | None = None) -> tuple[Claim, ...]:
    """The claims of one regime (see the module doc), each "a > b" on the paired seeds, over the
    models ``mapped`` (default: ``regimes.MAPPED``)."""
    mapped = regimes.MAPPED if mapped is None else mapped

    def m(model: str) -> str:
        return regimes.model_name(model, regime)

    claims = [Claim(f"{regime}: {text}", m(a), m(b)) for text, a, b in map_claims(mapped)]
    if regime != "clean":
        claims.append(Claim(f"{regime}: ABCD > clean ABCD", m("abcd"), "abcd"))
        claims += [Claim(f"{regime}: {label(model)} > clean AB", m(model), "ab") for model in mapped]
    return tuple(claims)


def mean_interval(values: dict[int, float]) -> PairedDifference:
    """The 95% t-interval of a cell's mean: the house's paired interval (:mod:`tailface.evidence.stats`)
    of the cell against 0."""
    return paired_difference(values, dict.fromkeys(values, 0.0))


def reunions(results: Results, name: str) -> dict[int, dict]:
    """Per finished seed of ``name`` (an ours cell of a split regime): its ``split_reunion.json``
    from the run folder, else computed from its clustering and manifest there, else from the archive."""
    out = {}
    for seed in results.seeds:
        if results.metrics_file(name, seed) is None:
            continue
        cell = cells.cell_dir(results.root, name, seed)
        doc = json.loads((cell / regimes.REUNION).read_text()) if (cell / regimes.REUNION).is_file() else \
            regimes.reunion_doc(cell, results.root, name, seed)
        kept = cells.cell_dir(results.archive, name, seed) / regimes.REUNION if results.archive else None
        if doc is None and kept is not None and kept.is_file():
            doc = json.loads(kept.read_text())
        if doc is not None:
            out[seed] = doc
    return out


def reunion_section(results: Results, regime: regimes.Regime) -> tuple[list[str], dict]:
    """The markdown and the numbers of the split reunion in ``regime`` (one row per seed)."""
    name = regimes.model_name("ours", regime.name)
    per_seed = reunions(results, name)
    base = regimes.model_name("ab", regime.name)
    lines = ["", f"Does aggregation reunite a split person? The super classes of {name} (clustered with the "
             f"{base} model's features) read against the manifest: a split-off identity is *reunited* when a "
             "super class holds it and a sibling (another identity of the same person); *chance*: the same "
             "super-class sizes at random within each tail group (evidence/split_reunion.py).", ""]
    if not per_seed:
        return lines + ["(no finished ours cell yet)"], {"base": base, "seeds": {}}
    lines += ["| seed | split-off identities | counted (a sibling clustered) | reunited | share % | chance % |",
              "|---:|---:|---:|---:|---:|---:|"]
    for seed, doc in per_seed.items():
        share, chance = doc.get("share"), doc.get("chance")
        lines.append(f"| {seed} | {doc['fakes']:,} | {doc['counted']:,} | {doc['reunited']:,} | "
                     f"{'-' if share is None else f'{100 * share:.1f}'} | "
                     f"{'-' if chance is None else f'{100 * chance:.1f}'} |")
    shares = {s: d["share"] for s, d in per_seed.items() if d.get("share") is not None}
    chances = {s: d["chance"] for s, d in per_seed.items() if d.get("chance") is not None}
    above = paired_difference(shares, chances)
    lines += ["", f"Mean over seeds: share {Cell(tuple(shares.values())).text(digits=1)}, chance "
              f"{Cell(tuple(chances.values())).text(digits=1)}; share - chance {above.text(digits=1)}: "
              f"{above.verdict}."]
    return lines, {"base": base, "seeds": {str(s): d for s, d in per_seed.items()},
                   "share": tables.cell_numbers(shares), "chance": tables.cell_numbers(chances),
                   "share_minus_chance": tables.difference_numbers(above)}


def same_as_clean_ab(results: Results, regime: regimes.Regime, metrics: list[Metric]) -> list[int]:
    """The seeds on which ``ab@<regime>`` gives exactly the clean AB's figures (every metric), when
    it does on every seed both have; else []."""
    if regime.name == "clean":
        return []
    name = regimes.model_name("ab", regime.name)
    seeds = sorted(set(results.values(name, metrics[0])) & set(results.values("ab", metrics[0])))
    same = all(results.values(name, m).get(s) == results.values("ab", m).get(s) for m in metrics for s in seeds)
    return seeds if seeds and same else []


def perturbation_text(regime: regimes.Regime) -> str:
    parts = []
    if regime.split:
        parts.append(f"--split-head {regime.split[0]}:{regime.split[1]}")
    if regime.noise:
        parts.append(f"--tail-noise {regime.noise[0]}:{regime.noise[1]}")
    if regime.epochs_factor != 1:
        parts.append(f"{regime.epochs_factor}x epochs")
    return ", ".join(f"`{p}`" if p.startswith("--") else p for p in parts) or "-"


def repair_text(mapped: tuple[str, ...]) -> str:
    """Which strongest method of ``reproduce methods`` the page maps, or that none is chosen yet."""
    chosen = [m for m in mapped if m not in regimes.MODELS]
    if not chosen:
        return ("The strongest method of `tailface reproduce methods` joins this map once that page exists "
                "(`regimes.REPAIR`: not chosen yet).")
    return (f"The strongest method of `tailface reproduce methods` (its best row by mean {DIR.name} on the clean "
            f"set): {', '.join(label(m) for m in chosen)}, trained in every regime with its shipped settings.")


def write(target: Target, inputs: Inputs) -> Report:
    results = inputs.results
    metrics = tables.available(results, tables.CLAIM_METRICS)
    mapped, questions = regimes.MAPPED, map_claims(regimes.MAPPED)
    lines = ["The training set of each regime (the evaluation, LFW, is never perturbed; a perturbation's seed is the "
             "cell's, so the spread over seeds includes the perturbation draw):", "",
             "| regime | training set | perturbation |", "|---|---|---|"]
    lines += [f"| {r.name} | {r.what} | {perturbation_text(r)} |" for r in regimes.REGIMES]
    lines += ["", repair_text(mapped), "", f"## The map ({DIR.name})", "",
              "| regime | " + " | ".join(label(m) for m in mapped) + " | "
              + " | ".join(text for text, _, _ in questions) + " |",
              "|---|" + "---:|" * len(mapped) + "---|" * len(questions)]
    for r in regimes.REGIMES:
        cells_text = [results.cell(regimes.model_name(m, r.name), DIR).text() for m in mapped]
        verdicts = [paired_difference(results.values(regimes.model_name(a, r.name), DIR),
                                      results.values(regimes.model_name(b, r.name), DIR)).verdict
                    for _, a, b in questions]
        lines.append(f"| {r.name} | " + " | ".join(cells_text + verdicts) + " |")
    plot(results, inputs.out / "regimes.png", mapped)
    lines += ["", f"![{DIR.name} per regime and model, 95% intervals](regimes.png)"]
    data: dict = {}
    for r in regimes.REGIMES:
        names = [regimes.model_name(m, r.name) for m in mapped]
        if r.name != "clean":
            names.append("ab")  # the clean AB, the reference of every regime
        lines += ["", f"## {r.name}: {r.what}", "",
                  "| model | " + " | ".join(m.name for m in metrics) + " |", "|---|" + "---:|" * len(metrics)]
        for name in names:
            shown = "clean AB (reference)" if name == "ab" and r.name != "clean" else label(regimes.parse(name)[0])
            lines.append(f"| {shown} | " + " | ".join(results.cell(name, m).text() for m in metrics) + " |")
        claims = claims_of(r.name, mapped)
        lines += ["", tables.claims_table(results, claims, source="ours")]
        same = same_as_clean_ab(results, r, metrics)
        if same:
            seeds = ("seeds " if len(same) > 1 else "seed ") + ", ".join(map(str, same))
            lines += ["", f"AB trains on the head identities only, which this perturbation does not touch: "
                          f"{regimes.model_name('ab', r.name)} repeats the clean AB, the same figures on {seeds} "
                          "(its claims against the clean AB are 0 by construction)."]
        entry = {"what": r.what, "split": r.split, "noise": r.noise, "epochs_factor": r.epochs_factor,
                 "models": {name: {"metrics": {m.name: tables.cell_numbers(results.values(name, m)) for m in metrics}}
                            for name in names},
                 "claims": tables.claim_numbers(results, claims)}
        if r.split is not None:
            more, entry["reunion"] = reunion_section(results, r)
            lines += more
        data[r.name] = entry
    lines += ["", tables.VERDICT_NOTE]
    return Report("\n".join(lines), {"regimes": data, "repair": [m for m in mapped if m not in regimes.MODELS]})


def plot(results: Results, path: Path, mapped: tuple[str, ...] = regimes.MODELS, metric: Metric = DIR) -> None:
    """``metric`` per regime (x) and model of ``mapped`` (markers), each the mean over seeds with its 95%
    interval."""
    # matplotlib inside: the Agg backend is chosen before pyplot loads (as tailface.eval.plots does)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    offsets = np.linspace(-0.2, 0.2, len(mapped))
    for offset, model in zip(offsets, mapped):
        xs, ys, low, high = [], [], [], []
        for x, r in enumerate(regimes.REGIMES):
            values = results.values(regimes.model_name(model, r.name), metric)
            if not values:
                continue
            d = mean_interval(values)
            xs.append(x + offset)
            ys.append(100 * d.mean)
            low.append(0.0 if d.n < 2 else 100 * (d.mean - d.low))
            high.append(0.0 if d.n < 2 else 100 * (d.high - d.mean))
        ax.errorbar(xs, ys, yerr=[low, high], marker="o", linestyle="none", capsize=3, label=label(model))
    clean_ab = results.cell("ab", metric)
    if clean_ab.n:
        ax.axhline(100 * clean_ab.mean, color="grey", linestyle="--", linewidth=1, label="clean AB (mean)")
    ax.set_xticks(range(len(regimes.REGIMES)), [r.name for r in regimes.REGIMES])
    ax.set_ylabel(f"{metric.name} (%)")
    ax.set_title("Where the tail hurts: mean over seeds, 95% t-interval")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


register_target(Target(
    "regimes", "Where the tail hurts: AB, ABCD and ours on perturbed training sets",
    models=tuple(regimes.model_name(m, r.name) for r in regimes.REGIMES for m in regimes.MAPPED),
    claims=tuple(c for r in regimes.REGIMES for c in claims_of(r.name)),
    write=write))
