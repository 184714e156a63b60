"""The look search as a figure: each trial's distance, the best so far, and params.yaml's look."""

from __future__ import annotations

from pathlib import Path


def plot_trials(frame, summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.scatter(frame["trial"], frame["distance"], s=14, color="#888", label="trial")
    ax.plot(frame["trial"], frame["distance"].cummin(), color="#1f6fb4", label="best so far")
    ax.axhline(summary["distance_default"], color="#c0392b", linestyle="--", label="params.yaml's look")
    ax.set_xlabel("trial")
    ax.set_ylabel("distance to the real crops")
    ax.set_title(f"look fitted: {summary['distance_fitted']:.1f} (params.yaml's look "
                 f"{summary['distance_default']:.1f})")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
