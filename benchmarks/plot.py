"""The benchmark table as a chart for the docs (``docs/performance.png``), drawn with matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

COLORS = {"raw": "#9e9e9e", "huey": "#f28e2b", "ours": "#4e79a7"}


def plot(systems: list[Any], results: dict[str, dict[str, float]], path: Path, notes: str) -> None:
    """Three panels: enqueue rate, drain rates (2 threads, 8 threads, processes) and latency percentiles."""
    shown = [system for system in systems if system.key in results]
    labels = [system.label.replace("django-tasks-q", "tasks-q") for system in shown]
    colors = [COLORS[system.kind] for system in shown]
    rows = range(len(shown))
    fig, axes = plt.subplots(1, 3, figsize=(17, 0.55 * len(shown) + 2.6), sharey=True)

    enqueue = [results[s.key].get("enqueue", 0) for s in shown]
    axes[0].barh(rows, enqueue, color=colors)
    axes[0].set_title("enqueue, one call at a time (tasks/s)")
    for row, value in zip(rows, enqueue, strict=True):
        axes[0].text(value, row, f" {value:,.0f}", va="center", fontsize=8)

    height = 0.27
    for offset, (name, title, alpha) in enumerate(
        [("drain_t2", "2 threads", 1.0), ("drain_t8", "8 threads", 0.7), ("drain_p", "2 processes", 0.45)]
    ):
        values = [results[s.key].get(name, 0) for s in shown]
        positions = [row + (offset - 1) * height for row in rows]
        axes[1].barh(positions, values, height=height, color=colors, alpha=alpha, label=title)
        for position, value in zip(positions, values, strict=True):
            axes[1].text(value, position, f" {value:,.0f}", va="center", fontsize=7)
    axes[1].set_title("drain of a full queue (tasks/s)")
    axes[1].legend(loc="lower right", fontsize=8)

    for offset, (name, marker) in enumerate([("p50", "o"), ("p95", "s"), ("p99", "^")]):
        values = [results[s.key].get(name, float("nan")) for s in shown]
        axes[2].scatter(values, [row + (offset - 1) * 0.2 for row in rows], c=colors, marker=marker,
                        label=name, edgecolors="black", linewidths=0.4)
    axes[2].set_xscale("log")
    axes[2].set_title("enqueue → start latency, idle consumer (ms, log scale)")
    axes[2].legend(loc="lower right", fontsize=8)

    axes[0].set_yticks(list(rows), labels)
    axes[0].invert_yaxis()
    for axis in axes:
        axis.grid(axis="x", alpha=0.3)
    fig.suptitle("django-tasks-q and huey on the same storages", fontsize=12)
    fig.text(0.01, 0.005, notes, fontsize=7, color="#555555", wrap=True)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
