# SPDX-License-Identifier: AGPL-3.0-or-later
"""What the demo shows: a summary table per question and an HTML contact sheet."""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from PIL import Image


@dataclass
class ClusterRow:
    """One cluster (or bin) of a job, with what its members really wrote."""

    name: str
    papers: list[int]
    truth: list[str | None]
    is_bin: bool = False

    @property
    def purity(self) -> float:
        """Share of the most common true answer."""
        return Counter(self.truth).most_common(1)[0][1] / len(self.truth)

    @property
    def majority(self) -> str | None:
        """The most common true answer."""
        return Counter(self.truth).most_common(1)[0][0]


@dataclass
class QuestionReport:
    """One question's clustering, ready to print."""

    question: int
    kind: str
    message: str
    seconds: float
    rows: list[ClusterRow] = field(default_factory=list)

    @property
    def purity(self) -> float:
        """Answers in their cluster's majority, over answers in clusters."""
        clustered = [r for r in self.rows if not r.is_bin]
        total = sum(len(r.papers) for r in clustered)
        agree = sum(round(r.purity * len(r.papers)) for r in clustered)
        return agree / total if total else 1.0


def question_report(question, kind, job, memberships, truth, seconds) -> QuestionReport:
    """Group a finished job's memberships into rows, clusters first, largest first."""
    report = QuestionReport(question, kind, job.message, seconds)
    clusters: dict[str, ClusterRow] = {}
    bins: dict[str, ClusterRow] = {}
    for m in memberships:
        number = m.paper.paper_number
        if m.cluster is not None:
            row = clusters.setdefault(
                m.cluster.name, ClusterRow(m.cluster.name, [], [])
            )
        else:
            label = m.get_state_display()
            row = bins.setdefault(label, ClusterRow(label, [], [], is_bin=True))
        row.papers.append(number)
        row.truth.append(truth.get(number))
    report.rows = sorted(clusters.values(), key=lambda r: -len(r.papers))
    report.rows += list(bins.values())
    return report


def format_report(report: QuestionReport) -> str:
    """The summary table of one question."""
    lines = [
        f"Question {report.question} ({report.kind}): {report.message};"
        f" purity {report.purity:.2f}; {report.seconds:.1f} s",
        f"  {'cluster':<16}{'size':>5}{'purity':>8}  most common true answer",
    ]
    for row in report.rows:
        name = f"[{row.name}]" if row.is_bin else row.name
        purity = "" if row.is_bin else f"{row.purity:.2f}"
        lines.append(
            f"  {name:<16}{len(row.papers):>5}{purity:>8}  {row.majority or '(blank)'}"
        )
    return "\n".join(lines)


def _data_uri(crop: np.ndarray, height: int = 48) -> str:
    image = Image.fromarray(crop)
    width = max(1, round(image.width * height / image.height))
    image = image.resize((width, height), Image.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def contact_sheet(reports: list[QuestionReport], crops: dict) -> str:
    """An HTML page: per question, one row of thumbnails per cluster or bin.

    Args:
        reports: the questions' reports.
        crops: ``{(question, paper): crop array}`` for every answer with a scan.
    """
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>plom_clustering_plugin demo: contact sheet</title><style>",
        "body{font-family:sans-serif;margin:1em} h2{margin-top:1.5em}",
        ".row{display:flex;flex-wrap:wrap;align-items:center;gap:4px;margin:6px 0;",
        "padding:4px;border-top:1px solid #ccc} .name{width:11em;font-weight:bold}",
        "img{border:1px solid #ddd} .bin{background:#f6f6f6}",
        "</style></head><body><h1>Demo contact sheet</h1>",
    ]
    for report in reports:
        parts.append(
            f"<h2>Question {report.question} ({html.escape(report.kind)}):"
            f" {html.escape(report.message)}</h2>"
        )
        for row in report.rows:
            klass = "row bin" if row.is_bin else "row"
            label = html.escape(f"{row.name} ({len(row.papers)})")
            parts.append(f"<div class='{klass}'><span class='name'>{label}</span>")
            for paper, truth in zip(row.papers, row.truth, strict=True):
                crop = crops.get((report.question, paper))
                title = html.escape(f"paper {paper}: {truth or 'blank'}")
                if crop is None:
                    parts.append(f"<span title='{title}'>#{paper}</span>")
                else:
                    parts.append(f"<img src='{_data_uri(crop)}' title='{title}'>")
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)
