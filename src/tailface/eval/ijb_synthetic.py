"""A small synthetic IJB release in the exact file formats, for tests and for trying the protocol.

``write_synthetic_ijb(root, kind)`` writes ``root/meta/<t>_face_tid_mid.txt``,
``<t>_name_5pts_score.txt``, ``<t>_template_pair_label.txt``, the 1:N lists (``<t>_1N_gallery_G1.csv``,
``..._G2.csv``, ``..._probe_mixed.csv``; IJB-B: ``S1``, ``S2``) and ``root/loose_crop/<n>.jpg``, as the
insightface release lays them out (:mod:`tailface.data.ijb_release`). The faces are the built-in
synthetic identities (:mod:`tailface.data.synthetic`, the evaluation stream: people distinct from the
training identities) drawn small and off-centre in a larger frame (a loose crop), with their five
landmarks (:func:`tailface.data.synthetic.face_landmarks`) written to 3 decimals, as the release does.

Subjects: ``enrolled`` in each of the two galleries (one gallery template each), ``unenrolled`` more
that only appear as probes (non-mated in both galleries, and in the merged one). Every subject has
``probe_templates`` probe templates. A template has 1 to ``max_media`` media, a media ``frames``
images (a still photo is one frame); media ids are drawn from a pool per subject, so one media id
can appear in several templates. Template ids, subject ids and media ids are scattered integers.
1:1 pairs: every gallery template with every probe template, each probe template with the next
three, and two pairs listed twice (equal scores: ties). ``scores`` are the detector scores to draw
from (default: uniform in [0.2, 1] to 3 decimals).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tailface.data.ijb_release import SEARCH_FILES
from tailface.data.images import encode_jpeg
from tailface.data.synthetic import face_landmarks, face_parameters, render


@dataclass
class SyntheticIjb:
    root: Path
    kind: str
    template_subject: dict[int, int] = field(default_factory=dict)
    gallery_templates: tuple[list[int], list[int]] = ([], [])
    probe_templates: list[int] = field(default_factory=list)
    pairs: list[tuple[int, int, int]] = field(default_factory=list)


def write_synthetic_ijb(root, kind: str = "ijbc", *, enrolled: int = 4, unenrolled: int = 2, probe_templates: int = 2,
                        max_media: int = 3, frames=(1, 2, 3), scores=None, image_size: int = 48, seed: int = 0,
                        face_scale: float = 0.55) -> SyntheticIjb:
    """Write the release (see the module docstring); returns its ground truth."""
    root = Path(root)
    rng = np.random.default_rng([seed, 23])
    n_subjects = 2 * enrolled + unenrolled
    subject_ids = (1000 + 7 * rng.permutation(5 * n_subjects)[:n_subjects]).tolist()
    template_ids = iter((rng.permutation(50 * n_subjects * (probe_templates + 1)) + 1).tolist())
    out = SyntheticIjb(root, kind, gallery_templates=([], []))
    # templates: (template id, subject index, [(media id, frames), ...])
    templates = []
    for s in range(n_subjects):
        pool = (rng.permutation(10_000)[:3 * max_media] + 60_000 + 10_000 * s).tolist()
        kinds = (["gallery"] if s < 2 * enrolled else []) + ["probe"] * probe_templates
        for role in kinds:
            tid = next(template_ids)
            chosen = rng.choice(pool, size=int(rng.integers(1, max_media + 1)), replace=False)
            templates.append((tid, s, [(int(m), int(rng.choice(frames))) for m in chosen]))
            out.template_subject[tid] = subject_ids[s]
            if role == "gallery":
                out.gallery_templates[0 if s < enrolled else 1].append(tid)
            else:
                out.probe_templates.append(tid)
    lines = [(tid, s, m) for tid, s, media in templates for m, f in media for _ in range(f)]
    counts = np.bincount([s for _, s, _ in lines], minlength=n_subjects)
    order = np.argsort([s for _, s, _ in lines], kind="stable")  # rendered by subject, written in template order
    params = face_parameters(counts, seed=seed)
    params["scale"] = params["scale"] * face_scale
    params["tx"] = params["tx"] + rng.uniform(-0.2, 0.2, len(lines))
    params["ty"] = params["ty"] + rng.uniform(-0.15, 0.15, len(lines))
    images = render(params, image_size)
    landmarks = face_landmarks(params, image_size)
    where = np.empty(len(lines), np.int64)
    where[order] = np.arange(len(lines))  # line k's face is rendered image where[k]
    det = (np.round(rng.uniform(0.2, 1.0, len(lines)), 3) if scores is None
           else rng.choice(np.asarray(scores, np.float64), len(lines)))
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "loose_crop").mkdir(parents=True, exist_ok=True)
    names = [f"{k + 1}.jpg" for k in range(len(lines))]
    tid_mid, pts = [], []
    for k, (tid, _, media_id) in enumerate(lines):
        (root / "loose_crop" / names[k]).write_bytes(encode_jpeg(images[where[k]]))
        tid_mid.append(f"{names[k]} {tid} {media_id}")
        coords = " ".join(f"{v:.3f}" for v in landmarks[where[k]].ravel())
        pts.append(f"{names[k]} {coords} {det[k]:.3f}")
    meta = root / "meta"
    (meta / f"{kind}_face_tid_mid.txt").write_text("\n".join(tid_mid) + "\n")
    (meta / f"{kind}_name_5pts_score.txt").write_text("\n".join(pts) + "\n")
    probes = out.probe_templates
    for g in out.gallery_templates[0] + out.gallery_templates[1]:
        out.pairs += [(g, p, int(out.template_subject[g] == out.template_subject[p])) for p in probes]
    for i, p in enumerate(probes):
        out.pairs += [(p, q, int(out.template_subject[p] == out.template_subject[q])) for q in probes[i + 1:i + 4]]
    genuine = next(p for p in out.pairs if p[2] == 1)
    impostor = next(p for p in out.pairs if p[2] == 0)
    out.pairs += [genuine, impostor]
    (meta / f"{kind}_template_pair_label.txt").write_text("".join(f"{a} {b} {y}\n" for a, b, y in out.pairs))
    rows_of: dict[int, list[str]] = {}
    for k, (tid, _, media_id) in enumerate(lines):
        rows_of.setdefault(tid, []).append(f"{tid},{out.template_subject[tid]},img/{names[k]},{media_id}")
    for file, tids in zip(SEARCH_FILES[kind], (*out.gallery_templates, probes)):
        body = [row for t in tids for row in rows_of[t]]
        (meta / file).write_text("TEMPLATE_ID,SUBJECT_ID,FILENAME,SIGHTING_ID\n" + "\n".join(body) + "\n")
    return out
