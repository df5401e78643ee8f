# SPDX-License-Identifier: AGPL-3.0-or-later
"""Print an evaluation result as plain-text tables, one per protocol, and save JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

#: (header, summary key, format) per column; shares are printed as percentages.
COLUMNS = (
    ("purity", "purity", "{:.3f}"),
    ("inv.pur", "inverse_purity", "{:.3f}"),
    ("NMI", "nmi", "{:.3f}"),
    ("ARI", "ari", "{:.3f}"),
    ("k found", "k_found", "{:.1f}"),
    ("k true", "k_true", "{:.1f}"),
    ("MC", "marking_cost", "{:.3f}"),
    ("MC ideal", "marking_cost_ideal", "{:.3f}"),
    ("review%", "review", "{:.1%}"),
    ("other%", "other", "{:.1%}"),
    ("blank%", "blank", "{:.1%}"),
    ("crops/s", "crops_per_second", "{:.0f}"),
)
#: Columns that show their spread over seeds (``±`` standard deviation) when a run
#: combines several seeds.
SPREAD_KEYS = ("purity", "ari", "marking_cost")


def _cell(value: float, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value).rstrip("%") if fmt.endswith("%}") else fmt.format(value)


def _seeds(seed: int | list[int]) -> str:
    if isinstance(seed, int):
        return f"seed={seed}"
    return f"seeds={','.join(map(str, seed))} (mean over seeds, ± standard deviation)"


def _cells(result: dict) -> list[str]:
    summary, spread = result["summary"], result.get("spread")
    cells = []
    for _, key, fmt in COLUMNS:
        cell = _cell(summary[key], fmt)
        if spread is not None and key in SPREAD_KEYS and cell != "-":
            cell += "±" + _cell(spread[key], fmt)
        cells.append(cell)
    return cells


def _protocol_title(protocol: str, info: dict) -> str:
    if info["questions"] == 1:
        return (
            f"{protocol}: 1 question, {info['answers']:,} answers, "
            f"k true {info['k_true_median']:.0f}"
        )
    return (
        f"{protocol}: {info['questions']} questions, {info['answers']:,} answers "
        f"({info['answers_min']}-{info['answers_max']} per question, median "
        f"{info['answers_median']:.0f}), median k true {info['k_true_median']:.0f}; "
        "scores are means over questions"
    )


def align_columns(rows: list[list[str]]) -> list[str]:
    """Right-align columns (the first one left-aligned) to their widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]


def format_tables(run: dict) -> str:
    """The whole run as text: a heading, then one table per protocol."""
    lines = [
        f"kind={run['kind']} data={run['data']} images={run['images']:,} "
        f"{_seeds(run['seed'])} scanify={'on' if run['scanify'] else 'off'}"
    ]
    headers = ["method", "k", "ok", *(c[0] for c in COLUMNS), "errors"]
    for protocol, info in run["protocols"].items():
        rows, notes = [headers], []
        for result in (r for r in run["results"] if r["protocol"] == protocol):
            summary = result["summary"]
            rows.append(
                [
                    result["method"],
                    "true" if result["mode"] == "true k" else "auto",
                    f"{summary['questions_ok']:.0f}/{summary['questions']:.0f}",
                    *_cells(result),
                    str(len(result["errors"])),
                ]
            )
            if result["errors"]:
                notes.append(
                    f"  {result['method']} ({result['mode']}): {result['errors'][0]}"
                )
        lines += ["", _protocol_title(protocol, info), *align_columns(rows)]
        if notes:
            lines += ["first error per method:", *notes]
    return "\n".join(lines)


def write_json(run: dict, path: str | Path) -> None:
    """Save the run (NaN written as null so any JSON reader accepts it)."""

    def clean(value):
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    Path(path).write_text(json.dumps(clean(run), indent=1) + "\n", encoding="utf-8")
