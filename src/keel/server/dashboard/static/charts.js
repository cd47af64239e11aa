// keel dashboard charts: small SVG charts written for this page (no third-party code).
// Every mark carries data-* attributes (series, value) so tests and people can read what is drawn.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#3b6ef5", "#f08a24", "#1f9d6a", "#b04ad6", "#d64550", "#17a2b8",
  "#8c6d31", "#e377c2", "#5a6b8c", "#9acd32"];

function el(tag, attrs, parent, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function html(tag, attrs, parent, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function tip(node, text) { el("title", {}, node, text); }

// -- number formats ---------------------------------------------------------------------------

const fmt = {
  usd(v) {
    if (v === null || v === undefined) return "–";
    const a = Math.abs(v);
    if (a === 0) return "$0";
    if (a >= 1000) return "$" + v.toLocaleString("en-US", { maximumFractionDigits: 0 });
    if (a >= 1) return "$" + v.toFixed(2);
    if (a >= 0.01) return "$" + v.toFixed(3);
    return "$" + v.toPrecision(2);
  },
  int(v) {
    if (v === null || v === undefined) return "–";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    return Math.round(v).toLocaleString("en-US");
  },
  ms(v) {
    if (v === null || v === undefined) return "–";
    if (v >= 10000) return (v / 1000).toFixed(1) + " s";
    if (v >= 1000) return (v / 1000).toFixed(2) + " s";
    if (v >= 100) return v.toFixed(0) + " ms";
    if (v >= 1) return v.toFixed(1) + " ms";
    if (v === 0) return "0 ms";
    if (v < 0.01) return "<0.01 ms";
    return v.toFixed(2) + " ms";
  },
  pct(v) {
    if (v === null || v === undefined) return "–";
    const p = v * 100;
    return (p >= 10 || p === 0 ? p.toFixed(0) : p.toFixed(1)) + "%";
  },
  time(t, width) {
    const d = new Date(t * 1000);
    const hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
    if (width < 7200) return hm;
    const md = d.toLocaleDateString([], { month: "short", day: "numeric" });
    return width < 86400 ? md + " " + hm : md;
  },
};

// A round axis maximum and step: 1, 2 or 5 times a power of ten.
function niceScale(max, ticks) {
  if (!(max > 0)) return { max: 1, step: 0.25 };
  const raw = max / ticks;
  const pow = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * pow).find((s) => s >= raw);
  return { max: Math.ceil(max / step) * step, step };
}

function empty(container, text) {
  container.replaceChildren();
  html("div", { class: "empty" }, container, text || "No calls in this range");
}

function legend(container, items) {
  const box = html("div", { class: "legend" }, container);
  for (const it of items) {
    const s = html("span", {}, box);
    const i = html("i", {}, s);
    i.style.background = it.color;
    s.appendChild(document.createTextNode(it.label));
    if (it.value !== undefined) html("b", {}, s, it.value);
  }
  return box;
}

function frame(container, height, left) {
  container.replaceChildren();
  const width = Math.max(container.clientWidth || 560, 260);
  const m = { l: left || 58, r: 10, t: 8, b: 24 };
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, height, role: "img" }, container);
  return { svg, width, height, m, w: width - m.l - m.r, h: height - m.t - m.b };
}

function yAxis(f, scale, format) {
  for (let v = 0; v <= scale.max + 1e-12; v += scale.step) {
    const y = f.m.t + f.h - (v / scale.max) * f.h;
    el("line", { x1: f.m.l, x2: f.m.l + f.w, y1: y, y2: y, class: "gridline" }, f.svg);
    el("text", { x: f.m.l - 6, y: y + 3.5, "text-anchor": "end" }, f.svg, format(v));
  }
}

function xLabels(f, times, width, x) {
  const every = Math.max(1, Math.ceil(times.length / Math.max(2, Math.floor(f.w / 78))));
  times.forEach((t, i) => {
    if (i % every) return;
    el("text", { x: x(i), y: f.height - 6, "text-anchor": "middle" }, f.svg, fmt.time(t, width));
  });
}

// Stacked bars over time: one bar per bucket, one segment per series.
function stackedBars(container, { times, width, series, format, name }) {
  const totals = times.map((_, i) => series.reduce((a, s) => a + (s.values[i] || 0), 0));
  if (!totals.some((v) => v > 0)) return empty(container);
  const f = frame(container, 220);
  f.svg.dataset.chart = name;
  const scale = niceScale(Math.max(...totals), 4);
  yAxis(f, scale, format);
  const slot = f.w / times.length;
  const bw = Math.max(1, Math.min(slot * 0.78, 26));
  const x = (i) => f.m.l + slot * i + slot / 2;
  times.forEach((t, i) => {
    let base = 0;
    for (const s of series) {
      const v = s.values[i] || 0;
      if (v <= 0) continue;
      const y0 = f.m.t + f.h - (base / scale.max) * f.h;
      const hh = Math.max((v / scale.max) * f.h, 0.8);
      const r = el("rect", { class: "bar", x: x(i) - bw / 2, y: y0 - hh, width: bw, height: hh,
        fill: s.color, rx: 1.5, "data-series": s.name, "data-value": v, "data-t": t }, f.svg);
      tip(r, `${s.name} · ${fmt.time(t, 60)}: ${format(v)}`);
      base += v;
    }
  });
  el("line", { x1: f.m.l, x2: f.m.l + f.w, y1: f.m.t + f.h, y2: f.m.t + f.h, class: "axis" }, f.svg);
  xLabels(f, times, width, x);
  legend(container, series.filter((s) => s.values.some((v) => v > 0))
    .map((s) => ({ label: s.name, color: s.color, value: format(s.values.reduce((a, b) => a + b, 0)) })));
}

// Lines over time (gaps where a bucket has no value).
function lines(container, { times, width, series, format, name }) {
  const all = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  if (!all.length) return empty(container);
  const f = frame(container, 220);
  f.svg.dataset.chart = name;
  const scale = niceScale(Math.max(...all), 4);
  yAxis(f, scale, format);
  const slot = f.w / times.length;
  const x = (i) => f.m.l + slot * i + slot / 2;
  const y = (v) => f.m.t + f.h - (v / scale.max) * f.h;
  for (const s of series) {
    let d = "";
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) { pen = false; return; }
      d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    el("path", { d, fill: "none", stroke: s.color, "stroke-width": 2, "stroke-linejoin": "round",
      "data-series": s.name }, f.svg);
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const c = el("circle", { cx: x(i), cy: y(v), r: 2.6, fill: s.color, class: "point",
        "data-series": s.name, "data-value": v }, f.svg);
      tip(c, `${s.name} · ${fmt.time(times[i], 60)}: ${format(v)}`);
    });
  }
  el("line", { x1: f.m.l, x2: f.m.l + f.w, y1: f.m.t + f.h, y2: f.m.t + f.h, class: "axis" }, f.svg);
  xLabels(f, times, width, x);
  legend(container, series.map((s) => ({ label: s.name, color: s.color })));
}

// Horizontal bars grouped per category: e.g. p50/p95/p99 per layer.
function groupedBars(container, { categories, groups, format, name, labelWidth }) {
  const values = categories.flatMap((c) => groups.map((g) => c.values[g.key]).filter((v) => v != null));
  if (!values.length) return empty(container);
  const rowH = 12 * groups.length + 14;
  const f = frame(container, categories.length * rowH + 26, labelWidth || 92);
  f.svg.dataset.chart = name;
  const scale = niceScale(Math.max(...values), 4);
  for (let v = 0; v <= scale.max + 1e-12; v += scale.step) {
    const x = f.m.l + (v / scale.max) * f.w;
    el("line", { x1: x, x2: x, y1: f.m.t, y2: f.m.t + f.h, class: "gridline" }, f.svg);
    el("text", { x, y: f.height - 6, "text-anchor": "middle" }, f.svg, format(v));
  }
  categories.forEach((c, ci) => {
    const top = f.m.t + ci * rowH + 4;
    el("text", { x: f.m.l - 8, y: top + (rowH - 14) / 2 + 4, "text-anchor": "end", class: "strong" }, f.svg, c.label);
    groups.forEach((g, gi) => {
      const v = c.values[g.key];
      const y = top + gi * 12;
      if (v == null) {
        if (gi === 0) el("text", { x: f.m.l + 4, y: y + 9 }, f.svg, "not measured");
        return;
      }
      const r = el("rect", { class: "bar", x: f.m.l, y, height: 10, rx: 2, fill: g.color,
        width: Math.max((v / scale.max) * f.w, 1), "data-series": `${c.label} ${g.key}`, "data-value": v }, f.svg);
      tip(r, `${c.label} ${g.key}: ${format(v)}`);
      el("text", { x: f.m.l + Math.max((v / scale.max) * f.w, 1) + 4, y: y + 9 }, f.svg, format(v));
    });
  });
  legend(container, groups.map((g) => ({ label: g.key, color: g.color })));
}

// A donut with a legend of values and shares.
function donut(container, { slices, center, sub, name, format }) {
  const total = slices.reduce((a, s) => a + s.value, 0);
  if (!(total > 0)) return empty(container);
  container.replaceChildren();
  const wrap = html("div", { class: "donut-wrap" }, container);
  const svg = el("svg", { viewBox: "0 0 150 150", height: 150, role: "img", "data-chart": name }, wrap);
  // Each slice is a dashed stroke on one circle: a single slice of 100% is still a ring.
  const cx = 75, cy = 75, mid = 58, thick = 24;
  const circ = 2 * Math.PI * mid;
  let start = 0;
  for (const s of slices) {
    if (s.value <= 0) continue;
    const frac = s.value / total;
    const ring = el("circle", { cx, cy, r: mid, fill: "none", stroke: s.color, "stroke-width": thick,
      "stroke-dasharray": `${(frac * circ).toFixed(2)} ${circ.toFixed(2)}`,
      "stroke-dashoffset": (-start * circ).toFixed(2), transform: `rotate(-90 ${cx} ${cy})`,
      class: "slice", "data-series": s.label, "data-value": s.value }, svg);
    tip(ring, `${s.label}: ${format(s.value)} (${fmt.pct(frac)})`);
    start += frac;
  }
  el("text", { x: cx, y: cy + 2, "text-anchor": "middle", class: "strong center" }, svg, center);
  if (sub) el("text", { x: cx, y: cy + 18, "text-anchor": "middle" }, svg, sub);
  legend(wrap, slices.map((s) => ({ label: s.label, color: s.color,
    value: `${format(s.value)} · ${fmt.pct(s.value / total)}` })));
}

// Horizontal bars, one per item, with the value at the end.
function bars(container, { items, format, name, labelWidth }) {
  if (!items.length) return empty(container, "None in this range");
  const f = frame(container, items.length * 22 + 8, labelWidth || 170);
  f.svg.dataset.chart = name;
  const max = Math.max(...items.map((i) => i.value));
  items.forEach((it, i) => {
    const y = f.m.t + i * 22;
    const label = it.label.length > 30 ? it.label.slice(0, 29) + "…" : it.label;
    el("text", { x: f.m.l - 8, y: y + 12, "text-anchor": "end" }, f.svg, label);
    const w = Math.max((it.value / max) * (f.w - 50), 2);
    const r = el("rect", { class: "bar", x: f.m.l, y: y + 2, width: w, height: 14, rx: 3, fill: it.color,
      "data-series": it.label, "data-value": it.value }, f.svg);
    tip(r, `${it.label}: ${format(it.value)}${it.note ? " · " + it.note : ""}`);
    el("text", { x: f.m.l + w + 5, y: y + 13, class: "strong" }, f.svg, format(it.value));
  });
}

window.KeelCharts = { PALETTE, fmt, html, stackedBars, lines, groupedBars, donut, bars, empty, legend };
