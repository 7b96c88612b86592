"""``tailface study synthetic`` on a tiny profile, run in this process, for the study tests."""

from __future__ import annotations

import io
from contextlib import redirect_stderr
from pathlib import Path

import torch
import yaml

from tailface.cli.main import main


def run_study(tmp: Path, overrides: dict, *options: str) -> tuple[Path, str, str]:
    """``tailface study synthetic --profile TINY OPTIONS --out tmp/study`` with ``overrides`` as the
    profile's overrides, one torch thread: (OUT, its stderr, the command line). Asserts exit 0."""
    profile = tmp / "tiny.yaml"
    profile.write_text("# tiny study profile (tests)\n" + yaml.safe_dump({"family": "synthetic", "data": "synthetic",
                                                                          "overrides": overrides}))
    out = tmp / "study"
    argv = ["study", "synthetic", "--profile", str(profile), *options, "--out", str(out)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    err = io.StringIO()
    try:
        with redirect_stderr(err):
            code = main(argv)
    finally:
        torch.set_num_threads(threads)
    assert code == 0, err.getvalue()[-3000:]
    return out, err.getvalue(), "tailface " + " ".join(argv)
