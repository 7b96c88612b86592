"""Table 1: the long-tail groups A-D of the training set, beside the paper's."""

from __future__ import annotations

from tailface.data.analysis import format_table, group_table, table_dict
from tailface.evidence.targets.registry import Inputs, Report, Target, register_target

# the paper's Table 1 (MS-Celeb-1M subset): identities, %, images, %, images per class
PAPER_TABLE1 = {"A": (17_032, 20.0, "695.8K", 62.3, "[21,217]"), "B": (15_000, 18.6, "207.0K", 18.6, "[10,20]"),
                "C": (27_000, 31.7, "163.5K", 14.6, "[4,9]"), "D": (26_132, 30.7, "49.9K", 4.5, "[1,3]")}


def write(target: Target, inputs: Inputs) -> Report:
    rows = group_table(inputs.faceset.class_counts(), inputs.thresholds)
    paper = ["| group | identities | % | images | % | images per class |", "|---|---:|---:|---:|---:|---|"]
    for g, (n, pn, im, pi, span) in PAPER_TABLE1.items():
        paper.append(f"| {g} | {n:,} | {pn}% | {im} | {pi}% | {span} |")
    markdown = "\n".join(["## Ours", "", "```", format_table(rows, inputs.thresholds), "```", "",
                          "## Paper (MS-Celeb-1M subset, 85,164 identities, 1.1M images)", "", *paper])
    paper_rows = {g: dict(zip(("identities", "identity_percent", "images", "image_percent", "images_per_class"), row))
                  for g, row in PAPER_TABLE1.items()}
    return Report(markdown, {**table_dict(rows, inputs.thresholds), "paper": paper_rows})


register_target(Target("table1", "Table 1: the long-tail groups of the training set", (), (), write))
