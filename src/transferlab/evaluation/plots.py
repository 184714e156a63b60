"""Figures people would rather look at than read: training curves (more in evaluate/study)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def save_training_curves(history: pd.DataFrame, task: str, path: str | Path) -> None:
    """Loss and the monitored accuracy per epoch, train vs validation, phases marked."""
    from transferlab.tasks import task_for

    accuracy = task_for(task).main_metric
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


# --------------------------------------------------------------------------- study


def _study_empty(path: str | Path, title: str, note: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, note, ha="center", va="center")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_study_factorial(frame: pd.DataFrame, metric: str, path: str | Path, chance: float | None = None) -> None:
    """Factorial cells (arm x augmentation): mean with 95 % t-interval over seeds, every seed as a dot."""
    import numpy as np

    from transferlab.evaluation.stats import t_interval

    part = frame[frame["group"] == "factorial"]
    column = "test_" + metric
    if part.empty:
        _study_empty(path, "Factorial study", "no factorial variants")
        return
    cells = list(part.groupby(["arm", "augment"], sort=False))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(cells) + 2), 4))
    for i, ((arm, aug), cell) in enumerate(cells):
        interval = t_interval(cell[column])
        low = interval.low if np.isfinite(interval.low) else interval.estimate
        high = interval.high if np.isfinite(interval.high) else interval.estimate
        color = "tab:blue" if arm != "scratch" else "tab:orange"
        ax.bar(i, interval.estimate, color=color, alpha=0.35 if aug == 0 else 0.7, edgecolor=color)
        ax.errorbar(i, interval.estimate, yerr=[[interval.estimate - low], [high - interval.estimate]], color="black",
                    capsize=5)
        ax.plot(np.full(len(cell), i) + np.linspace(-0.15, 0.15, len(cell)), cell[column], "k.", ms=5)
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", label=f"chance {chance:.3g}")
        ax.legend(loc="upper left")
    ax.set_xticks(range(len(cells)), [f"{arm}\naugment {aug:g}" for (arm, aug), _ in cells])
    ax.set_ylabel(f"test {metric.replace('_', ' ')}")
    ax.set_title("Factorial cells: mean, 95 % CI over seeds, seeds as dots", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_study_curves(curves: dict, metric: str, path: str | Path) -> None:
    """Validation (solid) and training (dashed) accuracy per epoch, mean over seeds, per factorial cell."""
    import numpy as np

    if not curves:
        _study_empty(path, "Learning curves", "no per-epoch history (linear probes train no epochs)")
        return
    name = metric.replace("_", " ")
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, ((arm, aug), curve) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        runs = np.asarray(curve["val_runs"])
        ax.fill_between(curve["epoch"], runs.min(axis=0), runs.max(axis=0), color=color, alpha=0.15)
        ax.plot(curve["epoch"], curve["val"], "-o", ms=3, color=color, label=f"{arm}, augment {aug:g} (validation)")
        ax.plot(curve["epoch"], curve["train"], "--", color=color, alpha=0.7)
    ax.set_xlabel("epoch")
    ax.set_ylabel(name)
    ax.set_title(f"Learning curves: validation {name} (band: min-max over seeds), training dashed", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_study_sizes(table: pd.DataFrame, metric: str, path: str | Path) -> None:
    """Test metric vs number of training images, one line per arm, 95 % CI bars."""
    import numpy as np

    if table.empty:
        _study_empty(path, "Data-size curve", "no data-size variants")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, part in table.groupby("arm"):
        part = part.sort_values("train_size")
        low = np.where(np.isfinite(part["ci_low"]), part["ci_low"], part["mean"])
        high = np.where(np.isfinite(part["ci_high"]), part["ci_high"], part["mean"])
        ax.errorbar(part["train_size"], part["mean"], yerr=[part["mean"] - low, high - part["mean"]], marker="o",
                    capsize=4, label=arm)
    ax.set_xscale("log")
    ax.set_xlabel("training images")
    ax.set_ylabel(f"test {metric.replace('_', ' ')}")
    ax.set_title("Data-size curve: mean and 95 % CI over seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_study_strategies(ranking: pd.DataFrame, frame: pd.DataFrame, metric: str, path: str | Path) -> None:
    """Strategies ranked (best on top): mean and 95 % CI of the test metric, training time beside."""
    import numpy as np

    if ranking.empty:
        _study_empty(path, "Strategies", "no strategy without augmentation")
        return
    fig, (ax, ax_time) = plt.subplots(1, 2, figsize=(9, 0.6 * len(ranking) + 1.8), sharey=True,
                                      gridspec_kw={"width_ratios": [3, 1]})
    y = np.arange(len(ranking))[::-1]
    low = np.where(np.isfinite(ranking["ci_low"]), ranking["ci_low"], ranking["mean"])
    high = np.where(np.isfinite(ranking["ci_high"]), ranking["ci_high"], ranking["mean"])
    ax.barh(y, ranking["mean"], color=["tab:orange" if s == "scratch" else "tab:blue" for s in ranking["strategy"]],
            alpha=0.6)
    ax.errorbar(ranking["mean"], y, xerr=[ranking["mean"] - low, high - ranking["mean"]], fmt="none", color="black",
                capsize=4)
    ax.set_yticks(y, ranking["strategy"])
    ax.set_xlabel(f"test {metric.replace('_', ' ')} (95 % CI)")
    ax.grid(axis="x", alpha=0.3)
    ax_time.barh(y, ranking["train_seconds"], color="grey", alpha=0.6)
    ax_time.set_xlabel("training seconds")
    fig.suptitle("Strategies without augmentation, best on top", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_study_verdict(arms: pd.DataFrame, per_repetition: dict, rope: float, reference: float | None, title: str,
                       metric: str, path: str | Path) -> None:
    """The report's main comparison: each arm's per-repetition results (dots), its mean and 95 %
    interval (``arms``: strategy, mean, ci_low, ci_high, status; best first), the region of
    practical equivalence around ``reference`` (the leader's mean) as a band, the verdict as title."""
    import numpy as np

    if arms.empty:
        _study_empty(path, title, "no strategy to compare")
        return
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(arms) + 2.5), 4))
    if reference is not None and np.isfinite(reference):
        ax.axhspan(reference - rope, reference + rope, color="tab:green", alpha=0.15,
                   label=f"ROPE: leader's mean ± {rope:g}")
    for i, row in enumerate(arms.itertuples(index=False)):
        mean = row.mean
        low = row.ci_low if np.isfinite(row.ci_low) else mean
        high = row.ci_high if np.isfinite(row.ci_high) else mean
        premature = str(row.status).startswith("premature")
        ax.errorbar(i, mean, yerr=[[mean - low], [high - mean]], fmt="s", color="grey" if premature else "black",
                    capsize=6, ms=6)
        values = np.asarray(per_repetition.get(row.strategy, []), float)
        ax.plot(i + np.linspace(-0.12, 0.12, len(values)) + 0.2, values, "o", color="tab:blue", ms=4, alpha=0.8)
    ax.plot([], [], "o", color="tab:blue", ms=4, label="one repetition (seed)")
    names = [s.replace("/", "/\n") for s in arms["strategy"]]  # source/strategy on two lines: long names overlap
    ax.set_xticks(range(len(arms)), [f"{n}\n({st})" for n, st in zip(names, arms["status"])], fontsize=8)
    ax.set_ylabel(f"test {metric.replace('_', ' ')} (mean, 95 % CI)")
    ax.set_xlabel("each arm's own interval; the verdict compares paired differences (report.md)", fontsize=8)
    ax.set_title(title, fontsize=9, wrap=True)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
