"""Figures people would rather look at than read: training curves (more in evaluate/study)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def save_training_curves(history: pd.DataFrame, task: str, path: str | Path) -> None:
    """Loss and the monitored accuracy per epoch, train vs validation, phases marked."""
    accuracy = "plate_accuracy" if task == "plates" else "accuracy"
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("loss", accuracy)):
        for prefix, style in (("", "-"), ("val_", "--")):
            column = prefix + metric
            if column in history:
                ax.plot(history["epoch"], history[column], style, marker="o", ms=3,
                        label="validation" if prefix else "train")
        ax.set_xlabel("epoch")
        ax.set_title(metric.replace("_", " "))
        ax.grid(alpha=0.3)
        if "phase" in history and history["phase"].nunique() > 1:
            for epoch in history.loc[history["phase"].ne(history["phase"].shift()), "epoch"].iloc[1:]:
                ax.axvline(epoch - 0.5, color="grey", lw=0.8, ls=":")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- evaluation


def save_confusion_matrix(matrix, labels: list[str], path: str | Path, title: str, annotate_max: int = 15) -> None:
    """Row-normalised confusion matrix (row = true, column = predicted) beside the errors alone.

    The left panel shows how each true symbol/class is read; the right one hides the
    (dominant) diagonal so the few systematic confusions (8 read as B, ...) stand out.
    Counts are written in the cells when there are at most ``annotate_max`` classes.
    """
    import numpy as np

    matrix = np.asarray(matrix, dtype=np.int64)
    k = len(labels)
    support = matrix.sum(axis=1, keepdims=True)
    rates = np.divide(matrix, support, out=np.zeros(matrix.shape, np.float64), where=support > 0)
    errors = matrix.copy()
    np.fill_diagonal(errors, 0)
    size = max(4.0, min(11.0, 0.28 * k + 2.5))
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1.5, size))
    panels = ((axes[0], rates, "share of each true row", "Blues", 1.0),
              (axes[1], errors, f"errors only ({int(errors.sum())} in all)", "Reds", max(1, int(errors.max(initial=0)))))
    for ax, values, subtitle, cmap, vmax in panels:
        shown = ax.imshow(values, cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_xticks(range(k), labels, fontsize=7 if k > 20 else 9, rotation=90 if max(map(len, labels), default=1) > 2 else 0)
        ax.set_yticks(range(k), labels, fontsize=7 if k > 20 else 9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(subtitle, fontsize=10)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        if k <= annotate_max:
            for (row, col), count in np.ndenumerate(matrix if values is rates else errors):
                if count:
                    ax.text(col, row, str(count), ha="center", va="center", fontsize=7,
                            color="white" if values[row, col] > 0.6 * vmax else "black")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_image_grid(images, titles: list[str], path: str | Path, title: str, columns: int = 4,
                    title_colors: list[str] | None = None) -> None:
    """Images in a grid with a (multi-line) title each; an empty list gives a figure saying so."""
    import numpy as np

    images = list(images)
    if not images:
        fig, ax = plt.subplots(figsize=(5, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center")
        fig.suptitle(title, fontsize=10)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return
    columns = max(1, min(columns, len(images)))
    rows = int(np.ceil(len(images) / columns))
    height, width = np.asarray(images[0]).shape[:2]
    cell = 2.6
    fig, axes = plt.subplots(rows, columns, squeeze=False,
                             figsize=(columns * cell, rows * (cell * height / width + 0.55) + 0.5))
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(images):
            ax.axis("off")
            continue
        ax.imshow(np.asarray(images[i]).astype(np.uint8))
        color = title_colors[i] if title_colors else "black"
        ax.set_title(titles[i], fontsize=8, color=color, family="monospace")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
