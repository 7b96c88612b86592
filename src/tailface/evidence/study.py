"""``tailface study DATA``: does the tail hurt plain softmax on this data, and does
aggregate-and-disperse help? One page with intervals and a recommendation.

The data's own identities give the test set: a share of the identities with at least two images
is held out of every model's training (``data.holdout``) and evaluated as BLUFR does (verification
at low FAR over all pairs, open-set identification; protocol ``heldout``). The models are the
cells of ``tailface reproduce`` (AB, ABCD, ours, the tail sweep) on a profile made from DATA:
the network and budget of the profile (cpu: the CelebA-sized configs, 32x32; gpu: ResNet-34 at
112x112; the built-in data: its own configs). The page takes Table 1's groups and the sweep from
the reports :func:`~tailface.evidence.reproduce.reproduce` returns (data, never a rendered page
read back).
"""

from __future__ import annotations

from pathlib import Path

from tailface.atomic import write_text
from tailface.data.analysis import GroupRow, format_table
from tailface.data.groups import GroupThresholds
from tailface.data.training_set import open_heldout
from tailface.evidence import tables
from tailface.evidence.cells import Profile, merged
from tailface.evidence.reproduce import cell_records, reproduce, shared_data, training_setup
from tailface.evidence.stats import HOLDS, REVERSED, paired_difference
from tailface.evidence.targets import Report, get_target
from tailface.locks import hold
from tailface.provenance import run_record

HOLDOUT = {"fraction": 0.2, "seed": 0, "min_images": 2}


def study_profile(data: str, profile: str, overrides: dict | None = None) -> Profile:
    base = Profile.load("synthetic" if data == "synthetic" and profile == "cpu" else profile)
    family = "synthetic" if data == "synthetic" else base.family
    extra = merged({"data": {"holdout": dict(HOLDOUT)}, "eval": {"protocols": ["heldout"]}}, overrides or {})
    return Profile(f"study-{base.name}", family, data, merged(base.overrides, extra), base.description)


def _held_out(profile: Profile) -> str:
    held = open_heldout(shared_data(profile, profile.data_spec()))
    return f"{held.num_classes:,} identities, {len(held):,} images"


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
        return "**cannot be told with one seed**: run more seeds (`--seeds 3`)"
    return f"**cannot be told from noise** with {d_vr.n} seeds (or the metrics disagree)"


def study(data: str, profile_name: str, seeds: int, out: Path, overrides: dict | None = None, jobs: int = 1) -> Path:
    """:func:`_study` holding OUT's lock (:mod:`tailface.locks`): a second process on OUT is refused."""
    with hold(out, "study"):
        return _study(data, profile_name, seeds, out, overrides, jobs)


def _study(data: str, profile_name: str, seeds: int, out: Path, overrides: dict | None = None, jobs: int = 1) -> Path:
    profile = study_profile(data, profile_name, overrides)
    reports = reproduce(["table1", "sweep"], profile, seeds, out, data, jobs=jobs)
    results = tables.Results(out, list(range(seeds)))
    vr, dir_ = tables.CLAIM_METRICS

    def diff(a, b, metric):
        return paired_difference(results.values(a, metric), results.values(b, metric))

    hurt = (diff("ab", "abcd", vr), diff("ab", "abcd", dir_))
    best = max(("ab", "abcd"), key=lambda m: results.cell(m, dir_).mean if results.cell(m, dir_).n else -1)
    helps = (diff("ours", best, vr), diff("ours", best, dir_))
    vs_abcd = (diff("ours", "abcd", vr), diff("ours", "abcd", dir_))
    verdicts = {h.verdict for h in helps}
    if HOLDS in verdicts and REVERSED not in verdicts:
        recommendation = (f"Use aggregate-and-disperse (`tailface run` with `data.train: {data}`): it beats the "
                          f"better plain-softmax baseline ({tables.LABELS[best]}) here.")
    elif REVERSED in verdicts:
        recommendation = (f"Train plain softmax on {tables.LABELS[best]} "
                          f"(`tailface train baselines/{'ab' if best == 'ab' else 'abcd'} --data {data}`): "
                          "aggregate-and-disperse is worse on this data.")
    else:
        recommendation = (f"No difference between ours and {tables.LABELS[best]} can be told from noise with "
                          f"{seeds} seed(s); rerun with more seeds (`tailface study {data} --seeds {seeds + 2}`, the "
                          f"finished seeds are kept). Until then the simpler model, plain softmax on "
                          f"{tables.LABELS[best]}, is as good as the evidence shows.")
    info = run_record()
    lines = [f"# tailface study: {data}", "",
             f"`tailface study {data} --profile {profile_name} --seeds {seeds} --out {out}`; written {info['date']} at "
             f"commit {info['commit']} on {info['machine']}, {info['cpus']} CPUs, torch {info['torch']}"
             f"{training_setup(cell_records(out, get_target('sweep').models, seeds))}. Test "
             f"identities: {int(100 * HOLDOUT['fraction'])}% of the identities with >= {HOLDOUT['min_images']} images "
             f"({_held_out(profile)}), held out of every model's training; verification over all their pairs and "
             "open-set identification (protocol `heldout`, docs/evaluation.md). The groups and the sweep below "
             "count the training identities only.", "",
             "## Answers", "",
             f"- Does the tail hurt plain softmax here (AB > ABCD)? "
             f"{_answer(*hurt, 'Yes', 'No: adding the tail helps softmax')}. "
             f"AB - ABCD: VR {hurt[0].text()}, DIR {hurt[1].text()}.",
             f"- Does aggregate-and-disperse help (ours > {tables.LABELS[best]}, the better softmax)? "
             f"{_answer(*helps, 'Yes', 'No: it is worse')}. Ours - {tables.LABELS[best]}: VR {helps[0].text()}, "
             f"DIR {helps[1].text()}"
             + (f"; ours - ABCD: VR {vs_abcd[0].text()}, DIR {vs_abcd[1].text()}." if best != "abcd" else "."),
             f"- **Recommendation.** {recommendation}", "",
             "## Groups of the data", "", "```", _groups(reports["table1"]), "```", "",
             "## Tail sweep, AB, ABCD and ours", "", reports["sweep"].markdown.strip(), ""]
    return write_text(out / "study.md", "\n".join(lines))


def _groups(table1: Report) -> str:
    """The group table of the training identities, from Table 1's numbers."""
    rows = [GroupRow(**row) for row in table1.data["rows"]]
    return format_table(rows, GroupThresholds(**table1.data["thresholds"]))
