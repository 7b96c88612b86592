"""``tailface study DATA``: does the tail hurt plain softmax on this data, and does
aggregate-and-disperse help? One page with intervals and a recommendation.

The data's own identities give the test set: a share of the identities with at least two images
(``--holdout``, default 20%) is held out of every model's training and evaluated as BLUFR does
(verification at low FAR over all pairs, open-set identification; protocol ``heldout``). The models
are the cells of ``tailface reproduce`` that the targets :data:`STUDY_TARGETS` read (AB, ABCD, ours,
the tail sweep) on a profile made from DATA: the network and budget of the profile (cpu: the
CelebA-sized configs, 32x32; gpu: ResNet-34 at 112x112; the built-in data: its own configs). The
page takes Table 1's groups and the sweep from the reports
:func:`~tailface.evidence.reproduce.reproduce` returns (data, never a rendered page read back).

Before any cell trains: the data is checked (a test set that can answer, a tail:
:mod:`tailface.evidence.study_data`) and the plan is said (cells, seeds and what they can answer,
the test set's DIR resolution, an estimate of the time: :mod:`tailface.evidence.study_plan`); then
the cells report ``cell k of n`` with the time left. Every page written (``study.md``, and the
targets' ``table1.md``, ``sweep.md``) names the ``tailface study`` command that rewrites it, and the
log lines say ``tailface study:``.

``--methods all|NAME,...`` adds rows of the methods table (:mod:`tailface.evidence.study_methods`)
to the cells: they join the plan, its estimate and the progress, resume and run ``--jobs`` at once
like the study's own. The page ends with the recommendation
(:mod:`tailface.evidence.study_recommendation`): every method studied (AB and ours always) against
ABCD on the held-out identities, the rule said on the page; ``study.json`` beside it carries the
same as data.
"""

from __future__ import annotations

import json
from pathlib import Path

from tailface.atomic import write_text
from tailface.data.analysis import GroupRow, format_table
from tailface.data.groups import GroupThresholds
from tailface.evidence import tables
from tailface.evidence.cells import Profile, merged
from tailface.evidence.reproduce import (
    Invocation,
    cell_records,
    needed_models,
    plain,
    reproduce,
    shared_data,
    training_setup,
)
from tailface.evidence.stats import HOLDS, REVERSED, paired_difference
from tailface.evidence.study_data import check_data
from tailface.evidence.study_methods import methods_argument, studied
from tailface.evidence.study_plan import DEFAULT_SEEDS, plan_hook
from tailface.evidence.study_recommendation import REFERENCE, recommend, study_values
from tailface.evidence.targets import Report
from tailface.locks import hold
from tailface.provenance import run_record

HOLDOUT = {"fraction": 0.2, "seed": 0, "min_images": 2}
# the targets whose cells the study trains and whose reports its page reads: the cell list is theirs
# (``needed_models``), so a study of more models is one more target here, not a branch
STUDY_TARGETS = ("table1", "sweep")


def study_profile(data: str, profile: str, overrides: dict | None = None,
                  holdout: float = HOLDOUT["fraction"]) -> Profile:
    base = Profile.load("synthetic" if data == "synthetic" and profile == "cpu" else profile)
    family = "synthetic" if data == "synthetic" else base.family
    extra = merged({"data": {"holdout": {**HOLDOUT, "fraction": holdout}}, "eval": {"protocols": ["heldout"]}},
                   overrides or {})
    description = (f"the networks and budgets of the {base.name} profile; {100 * holdout:g}% of the identities with "
                   f">= {HOLDOUT['min_images']} images held out as the test set")
    return Profile(f"study-{base.name}", family, data, merged(base.overrides, extra), description)


def study_command(data: str, profile: str, seeds: int, out: Path, holdout: float = HOLDOUT["fraction"],
                  methods: tuple[str, ...] = ()) -> str:
    """The command line that (re)writes the study's pages: finished cells are kept."""
    fraction = f" --holdout {holdout:g}" if holdout != HOLDOUT["fraction"] else ""
    chosen = f" --methods {methods_argument(methods)}" if methods else ""
    return f"tailface study {data} --profile {profile} --seeds {seeds}{fraction}{chosen} --out {out}"


def _answer(d_vr, d_dir, yes: str, no: str) -> str:
    verdicts = {d_vr.verdict, d_dir.verdict}
    if verdicts == {HOLDS}:
        return f"**{yes}** (both VR and DIR, 95% intervals above 0)"
    if verdicts == {REVERSED}:
        return f"**{no}** (both VR and DIR, 95% intervals below 0)"
    if HOLDS in verdicts and REVERSED not in verdicts:
        return f"**{yes}, on one metric**; the other is within noise"
    if REVERSED in verdicts and HOLDS not in verdicts:
        return f"**{no}, on one metric**; the other is within noise"
    if d_vr.n < 2:
        return f"**cannot be told with one seed**: run more seeds (`--seeds {DEFAULT_SEEDS}`)"
    return f"**cannot be told from noise** with {d_vr.n} seeds (or the metrics disagree)"


def study(data: str, profile_name: str, seeds: int, out: Path, overrides: dict | None = None, jobs: int = 1,
          holdout: float = HOLDOUT["fraction"], methods: tuple[str, ...] = (), accept_changed: bool = False,
          progress: bool = True) -> Path:
    """:func:`_study` holding OUT's lock (:mod:`tailface.locks`): a second process on OUT is refused.
    ``methods``: rows of :data:`tailface.evidence.methods.METHODS` trained besides the study's own
    cells (``--methods``); ``accept_changed``: ``--accept-changed-inputs``; ``progress``: the
    cells' progress bars (``--no-progress``: ``train.progress: false``, which changes no result)."""
    with hold(out, "study"):
        if not progress:
            overrides = merged(overrides or {}, {"train": {"progress": False}})
        return _study(data, profile_name, seeds, out, overrides, jobs, holdout, methods, accept_changed)


def _study(data: str, profile_name: str, seeds: int, out: Path, overrides: dict | None, jobs: int,
           holdout: float, methods: tuple[str, ...], accept_changed: bool) -> Path:
    profile = study_profile(data, profile_name, overrides, holdout)
    checked = check_data(shared_data(profile, data), data, holdout)  # before any cell trains
    command = study_command(data, profile_name, seeds, out, holdout, methods)
    models = needed_models(list(STUDY_TARGETS), methods)
    plan = plan_hook(profile, out, data, checked, models, seeds, jobs)
    reports = reproduce(list(STUDY_TARGETS), profile, seeds, out, data, jobs=jobs, accept_changed=accept_changed,
                        invocation=Invocation("study", command, paper_note=False, before_training=plan, also=methods))
    results = tables.Results(out, list(range(seeds)))
    vr, dir_ = tables.CLAIM_METRICS

    def diff(a, b, metric):
        return paired_difference(results.values(a, metric), results.values(b, metric))

    hurt = (diff("ab", "abcd", vr), diff("ab", "abcd", dir_))
    best = max(("ab", "abcd"), key=lambda m: results.cell(m, dir_).mean if results.cell(m, dir_).n else -1)
    helps = (diff("ours", best, vr), diff("ours", best, dir_))
    vs_abcd = (diff("ours", "abcd", vr), diff("ours", "abcd", dir_))
    rows = studied(models)
    recommendation = recommend(study_values(results, [REFERENCE, *(m.model for m in rows)]), rows)
    rerun = study_command(data, profile_name, max(seeds + 2, DEFAULT_SEEDS), out, holdout, methods)
    info = run_record()
    test = checked.test
    lines = [f"# tailface study: {data}", "",
             f"`{command}`; written {info['date']} at "
             f"commit {info['commit']} on {info['machine']}, {info['cpus']} CPUs, torch {info['torch']}"
             f"{training_setup(cell_records(out, models, seeds))}. Test "
             f"identities: {100 * holdout:g}% of the identities with >= {HOLDOUT['min_images']} images "
             f"({test.identities:,} identities, {test.images:,} images), held out of every model's training; "
             "verification over all their pairs and open-set identification (protocol `heldout`, "
             f"docs/evaluation.md): DIR@FAR=1% over {test.genuine:,} genuine probes, "
             f"{test.resolution.short()}. The groups and the sweep below count the training identities only. "
             f"Methods studied (the recommendation's candidates, against ABCD): "
             f"{', '.join(m.label for m in rows if m.model != REFERENCE)}.", "",
             "## Answers", "",
             f"- Does the tail hurt plain softmax here (AB > ABCD)? "
             f"{_answer(*hurt, 'Yes', 'No: adding the tail helps softmax')}. "
             f"AB - ABCD: VR {hurt[0].text()}, DIR {hurt[1].text()}.",
             f"- Does aggregate-and-disperse help (ours > {tables.LABELS[best]}, the better softmax)? "
             f"{_answer(*helps, 'Yes', 'No: it is worse')}. Ours - {tables.LABELS[best]}: VR {helps[0].text()}, "
             f"DIR {helps[1].text()}"
             + (f"; ours - ABCD: VR {vs_abcd[0].text()}, DIR {vs_abcd[1].text()}." if best != "abcd" else "."), "",
             "## Groups of the data", "", "```", _groups(reports["table1"]), "```", "",
             "## Tail sweep, AB, ABCD and ours", "", reports["sweep"].markdown.strip(), "",
             *recommendation.markdown(rerun), ""]
    facts = {"command": command, "data": data, "profile": profile.name, "seeds": list(range(seeds)),
             "methods": [m.model for m in rows], "written": info,
             "test_set": {"identities": test.identities, "images": test.images, "genuine_probes": test.genuine,
                          "impostor_probes": test.impostors, "holdout": holdout},
             "units": "metric values and differences are fractions (the page shows points)",
             "recommendation": recommendation.data(rerun)}
    write_text(out / "study.json", json.dumps(plain(facts), indent=1, allow_nan=False) + "\n")
    return write_text(out / "study.md", "\n".join(lines))


def _groups(table1: Report) -> str:
    """The group table of the training identities, from Table 1's numbers."""
    rows = [GroupRow(**row) for row in table1.data["rows"]]
    return format_table(rows, GroupThresholds(**table1.data["thresholds"]))
