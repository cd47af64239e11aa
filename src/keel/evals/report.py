"""The HTML report of a comparison: one self-contained file, charts drawn as inline SVG (no downloads)."""

from __future__ import annotations

from html import escape

from keel.evals.compare import CaseChange, Comparison, Delta
from keel.evals.store import CaseResult, Run

_A, _B, _BAD, _GOOD = "#8a94a6", "#3b6fd8", "#c8372d", "#2e8b57"
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d232e;padding:0 1rem}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #e3e6eb;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f6f8}.verdict{padding:.6rem 1rem;border-radius:6px;font-weight:600;display:inline-block}
.bad{background:#fbe9e7;color:#8c1d14}.good{background:#e6f4ea;color:#1c5e36}.mono{font-family:ui-monospace,monospace;
font-size:12px;white-space:pre-wrap;max-width:330px}.charts{display:flex;gap:2rem;flex-wrap:wrap}
.regressed{background:#fdf1ef}.fixed{background:#eef8f1}small{color:#5b6576}
"""


def _fmt(v: float, pct: bool) -> str:
    return f"{v * 100:.1f}%" if pct else f"{v:.4g}"


def _ci(d: Delta, pct: bool = False, unit: str = "") -> str:
    sign = "+" if d.change >= 0 else ""
    text = f"{sign}{_fmt(d.change, pct)}{unit}"
    if d.low is not None and d.high is not None:
        text += f" (95% CI {_fmt(d.low, pct)}{unit} to {_fmt(d.high, pct)}{unit})"
    return text


def bars(title: str, rows: list[tuple[str, float, float]], *, pct: bool = False, unit: str = "") -> str:
    """Grouped bars, A grey and B blue, one group per row; values labelled."""
    width, row_h, left = 460, 46, 100
    top = max([1e-12, *(max(a, b) for _, a, b in rows)])
    scale = (width - left - 120) / top
    parts = [
        f'<svg width="{width}" height="{row_h * len(rows) + 34}" role="img" aria-label="{escape(title)}">'
    ]
    parts.append(f'<text x="0" y="14" font-weight="600">{escape(title)}</text>')
    for i, (label, a, b) in enumerate(rows):
        y = 26 + i * row_h
        parts.append(f'<text x="0" y="{y + 18}">{escape(label)}</text>')
        for j, (v, colour) in enumerate(((a, _A), (b, _B))):
            w = max(1.0, v * scale)
            yy = y + j * 18
            parts.append(f'<rect x="{left}" y="{yy}" width="{w:.1f}" height="15" fill="{colour}"/>')
            value = f"{'AB'[j]}: {_fmt(v, pct)}{unit}"
            parts.append(f'<text x="{left + w + 4:.1f}" y="{yy + 12}" font-size="11">{escape(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def case_deltas(cases: list[CaseChange]) -> str:
    """One horizontal bar per case: its score change, red when it got worse, green when better."""
    width, row_h, mid = 520, 16, 330
    half = width - mid - 10
    parts = [
        f'<svg width="{width}" height="{row_h * len(cases) + 24}" role="img" '
        'aria-label="score change per case">'
    ]
    parts.append('<text x="0" y="12" font-weight="600">score change per case (B − A)</text>')
    parts.append(f'<line x1="{mid}" x2="{mid}" y1="16" y2="{row_h * len(cases) + 20}" stroke="#999"/>')
    for i, c in enumerate(cases):
        y = 18 + i * row_h
        d = c.b.score - c.a.score
        w = abs(d) * half
        x = mid if d >= 0 else mid - w
        colour = _GOOD if d > 0 else _BAD
        parts.append(f'<text x="0" y="{y + 11}" font-size="11">{escape(c.case_id[:40])}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y + 2}" width="{max(w, 0.5):.1f}" height="11" fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _run_line(tag: str, run: Run) -> str:
    return (
        f"<li><b>{tag}</b> run <code>{escape(run.id)}</code>: suite {escape(run.suite)}, feature "
        f"{escape(run.feature)}, prompt {escape(run.prompt or '—')}, model {escape(run.model)}</li>"
    )


def _failing(c: CaseResult) -> str:
    reasons = [o["reason"] for o in c.outcomes if not o["pass"]]
    if c.error:
        reasons.insert(0, c.error)
    return escape("; ".join(reasons)[:300])


def render_html(cmp: Comparison) -> str:
    """The whole report."""
    verdict = (
        f'<span class="verdict bad">Regression: pass rate {_ci(cmp.pass_rate, pct=True)}, '
        f"{len(cmp.regressed)} case(s) regressed</span>"
        if cmp.is_regression
        else f'<span class="verdict good">No regression beyond the threshold: pass rate '
        f"{_ci(cmp.pass_rate, pct=True)}</span>"
    )
    rows = []
    order = {"regressed": 0, "fixed": 1, "still failing": 2, "score changed": 3, "passing": 4}
    for c in sorted(cmp.cases, key=lambda c: (order[c.status], c.case_id)):
        cls = c.status if c.status in ("regressed", "fixed") else ""
        rows.append(
            f'<tr class="{cls}"><td>{escape(c.case_id)}</td><td>{c.status}</td>'
            f"<td>{c.a.score:.3f} → {c.b.score:.3f}</td>"
            f'<td class="mono">{escape(c.a.output[:400])}</td>'
            f'<td class="mono">{escape(c.b.output[:400])}</td>'
            f"<td><small>{_failing(c.b) or _failing(c.a)}</small></td></tr>"
        )
    charts = [
        bars(
            "pass rate and mean score",
            [("pass rate", cmp.pass_rate.a, cmp.pass_rate.b), ("mean score", cmp.score.a, cmp.score.b)],
            pct=True,
        ),
        bars(
            "latency per case",
            [("mean", cmp.latency_ms.a, cmp.latency_ms.b), ("p95", *cmp.p95_ms)],
            unit=" ms",
        ),
        bars("cost per case (USD, uncached)", [("mean", cmp.cost_usd.a, cmp.cost_usd.b)]),
    ]
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>keel eval: {escape(cmp.a.id)} vs {escape(cmp.b.id)}</title><style>{_CSS}</style></head><body>
<h1>Eval comparison: {escape(cmp.a.suite)}</h1>
<ul>{_run_line("A", cmp.a)}{_run_line("B", cmp.b)}</ul>
<p>{verdict}</p>
<table><tr><th>measure</th><th>A</th><th>B</th><th>B − A</th></tr>
<tr><td>pass rate</td><td>{cmp.pass_rate.a:.1%}</td><td>{cmp.pass_rate.b:.1%}</td><td>{_ci(cmp.pass_rate, pct=True)}</td></tr>
<tr><td>mean score</td><td>{cmp.score.a:.3f}</td><td>{cmp.score.b:.3f}</td><td>{_ci(cmp.score)}</td></tr>
<tr><td>mean latency</td><td>{cmp.latency_ms.a:.1f} ms</td><td>{cmp.latency_ms.b:.1f} ms</td><td>{_ci(cmp.latency_ms, unit=" ms")}</td></tr>
<tr><td>mean cost per case</td><td>${cmp.cost_usd.a:.6f}</td><td>${cmp.cost_usd.b:.6f}</td><td>{_ci(cmp.cost_usd)}</td></tr>
<tr><td>cases</td><td colspan="3">{len(cmp.cases)} compared; {len(cmp.regressed)} regressed, {len(cmp.fixed)} fixed</td></tr>
</table>
<h2>Charts</h2><div class="charts">{"".join(charts)}</div>
<div class="charts">{case_deltas(cmp.cases)}</div>
<h2>Cases</h2>
<table><tr><th>case</th><th>status</th><th>score</th><th>output A</th><th>output B</th><th>why it fails</th></tr>
{"".join(rows)}</table>
</body></html>
"""  # noqa: E501
