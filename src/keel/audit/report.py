"""The audit as a terminal table and as a self-contained HTML report (inline SVG, no downloads)."""

from __future__ import annotations

import time
from html import escape

from rich.table import Table

from keel.audit.checks import AREAS, FeatureAudit

_MARK = {"yes": "yes", "no": "NO", "skip": "skip"}
_COLOUR = {"yes": "#2e8b57", "no": "#c8372d", "skip": "#8a94a6"}


def table(audits: list[FeatureAudit]) -> Table:
    """One row per finding: feature, area, question, answer, evidence."""
    t = Table("feature", "area", "question", "answer", "evidence", box=None, pad_edge=False)
    for a in audits:
        for i, f in enumerate(a.findings):
            t.add_row(a.feature if i == 0 else "", f.area, f.question, _MARK[f.answer], f.evidence)
    return t


def grid(audits: list[FeatureAudit]) -> str:
    """An SVG grid: features down, areas across, each cell coloured by its worst answer."""
    cell, left, top = 90, 160, 28
    h = top + cell // 2 * len(audits) + 6
    parts = [
        f'<svg width="{left + cell * len(AREAS)}" height="{h}" role="img" aria-label="readiness by area">'
    ]
    for j, area in enumerate(AREAS):
        parts.append(f'<text x="{left + j * cell + 4}" y="18" font-size="12">{area}</text>')
    for i, a in enumerate(audits):
        y = top + i * (cell // 2)
        parts.append(f'<text x="0" y="{y + 26}" font-size="12">{escape(a.feature[:22])}</text>')
        for j, area in enumerate(AREAS):
            answers = [f.answer for f in a.findings if f.area == area]
            worst = "no" if "no" in answers else "yes" if "yes" in answers else "skip"
            parts.append(
                f'<rect x="{left + j * cell}" y="{y + 4}" width="{cell - 6}" height="{cell // 2 - 8}" '
                f'rx="4" fill="{_COLOUR[worst]}"><title>{escape(a.feature)} {area}: {worst}</title></rect>'
            )
            parts.append(
                f'<text x="{left + j * cell + 8}" y="{y + 26}" font-size="12" '
                f'fill="#fff">{_MARK[worst]}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def render_html(audits: list[FeatureAudit], *, source: str, url: str | None) -> str:
    """The whole report."""
    ready = all(a.ready for a in audits)
    verdict = "Ready: every answer is yes" if ready else "Not ready: at least one answer is no"
    rows = []
    for a in audits:
        for f in a.findings:
            rows.append(
                f"<tr><td>{escape(a.feature)}</td><td>{f.area}</td><td>{escape(f.question)}</td>"
                f'<td style="color:{_COLOUR[f.answer]};font-weight:600">{_MARK[f.answer]}</td>'
                f"<td>{escape(f.evidence)}</td></tr>"
            )
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>keel audit</title>
<style>body{{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;
color:#1d232e}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #e3e6eb;padding:.35rem .5rem;
text-align:left;vertical-align:top}}th{{background:#f5f6f8}}.v{{padding:.6rem 1rem;border-radius:6px;
font-weight:600;display:inline-block;background:{"#e6f4ea" if ready else "#fbe9e7"}}}</style></head><body>
<h1>Production readiness: {escape(source)}</h1>
<p>{when}; gateway measured: {escape(url or "none (pass --url)")}</p>
<p class="v">{verdict}</p>
<div>{grid(audits)}</div>
<table><tr><th>feature</th><th>area</th><th>question</th><th>answer</th><th>evidence</th></tr>
{"".join(rows)}</table></body></html>
"""
