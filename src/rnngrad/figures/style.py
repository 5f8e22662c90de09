"""The one style every figure shares: seaborn paper context, colour-blind-safe palette, PNG + PDF output."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from rnngrad.io import atomic_write  # noqa: E402

PALETTE = "colorblind"
SEQUENTIAL = "viridis"  # perceptually uniform, readable in grey and by colour-blind readers
ACTIVATION_ORDER = ["sigmoid", "tanh", "relu"]
DPI = 150
# No creation date in the files: a figure rebuilt from the same tables is the same bytes, so the manifest's sha256
# certifies a rebuild and `git status` stays clean after rerunning an unchanged pipeline.
METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}


def apply() -> None:
    """Set the shared theme; call at the start of every render()."""
    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=1.1)
    plt.rcParams.update({"figure.dpi": DPI, "savefig.bbox": "tight", "axes.titlesize": "medium"})


def save(fig: plt.Figure, out_path: str | Path) -> None:
    """Write the figure as PNG at ``out_path`` and as PDF beside it, each atomically, then close it."""
    out_path = Path(out_path)
    for path in (out_path.with_suffix(".png"), out_path.with_suffix(".pdf")):
        fmt = path.suffix.lstrip(".")
        atomic_write(path, lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=DPI, metadata=METADATA[fmt]))
    plt.close(fig)
