"""Are the credible regions honest? The share of photos whose true position lies inside their region at
each level (coverage), next to the level, and the median area: coverage far below the level means the
model is over-confident on this collection, far above, under-confident."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Coverage:
    level: float
    n: int  # photos with ground truth and a region at this level
    inside: int
    median_area_km2: float

    @property
    def share(self) -> float:
        return self.inside / self.n if self.n else float("nan")


def coverage(regions: Sequence[Sequence[tuple[float, float, bool | None]]]) -> list[Coverage]:
    """Per level, over photos: ``regions`` holds each photo's (level, area km², truth inside or None when
    the photo has no ground truth)."""
    by_level: dict[float, list[tuple[float, bool]]] = {}
    for photo in regions:
        for level, area, inside in photo:
            if inside is not None:
                by_level.setdefault(float(level), []).append((float(area), bool(inside)))
    return [Coverage(level, len(rows), sum(inside for _, inside in rows),
                     float(np.median([area for area, _ in rows])))
            for level, rows in sorted(by_level.items())]


NOTE = ("A level-p region is the smallest area holding p of the photo's probability. If the model is calibrated "
        "on this collection, about p of the true positions fall inside; far fewer means it is over-confident "
        "here, far more under-confident.")


def coverage_html(rows: list[Coverage]) -> str:
    """The report's 'Credible regions' section ('' without regions)."""
    if not rows:
        return ""
    body = "".join(
        f'<tr><td class="l">{row.level:.0%}</td><td class="v">{row.share:.1%}</td><td>{row.inside} of {row.n}</td>'
        f"<td>{row.median_area_km2:,.0f} km²</td></tr>" for row in rows)
    return ("<h2>Credible regions</h2>"
            '<table class="summary"><thead><tr><th class="l">Level</th><th>Truth inside (coverage)</th>'
            f"<th>Photos</th><th>Median area</th></tr></thead><tbody>{body}</tbody></table>"
            f'<p class="note">{html.escape(NOTE)}</p>')
