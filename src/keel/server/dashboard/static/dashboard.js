// keel dashboard: reads /dashboard/api/* with the admin key kept in sessionStorage and draws the page.
"use strict";

(function () {
  const C = window.KeelCharts;
  const { fmt, html } = C;
  const FILTERS = ["range", "feature", "model", "key"];
  const ACTION_COLORS = { block: "#d64550", flag: "#d99a16", redact: "#8a63d2", strip: "#8a63d2",
    pseudonymize: "#8a63d2", modify: "#8a63d2", pass: "#1f9d6a", allow: "#1f9d6a" };
  const CACHE_COLORS = { exact: "#1f9d6a", semantic: "#17a2b8", miss: "#c7cedb" };
  const $ = (sel) => document.querySelector(sel);
  const { api } = window.KeelAuth;
  let last = null; // the last overview, redrawn on resize
  let loads = 0;
  let timer = null;

  // -- filters (kept in the URL's #fragment, so a view can be shared) -----------------------------

  function readFilters() {
    const params = new URLSearchParams(location.hash.slice(1));
    for (const name of FILTERS) {
      const value = params.get(name);
      if (value === null) continue;
      const select = $("#f-" + name);
      if (![...select.options].some((o) => o.value === value)) html("option", { value }, select, value);
      select.value = value;
    }
  }

  function query() {
    const params = new URLSearchParams();
    for (const name of FILTERS) {
      const value = $("#f-" + name).value;
      if (value) params.set(name, value);
    }
    return params.toString();
  }

  function fillOptions(name, values) {
    const select = $("#f-" + name);
    const current = select.value;
    const all = [...new Set([...values, ...(current ? [current] : [])])].sort();
    select.replaceChildren();
    html("option", { value: "" }, select, "all");
    for (const v of all) html("option", { value: v }, select, v);
    select.value = current;
  }

  $("#filters").addEventListener("change", () => {
    history.replaceState(null, "", "#" + query());
    load();
  });
  $("#refresh").addEventListener("click", () => load());
  $("#auto").addEventListener("change", schedule);

  function schedule() {
    clearInterval(timer);
    if ($("#auto").checked) {
      timer = setInterval(() => { if (!document.hidden && !window.KeelAuth.loginOpen()) load(); }, 30000);
    }
  }

  // -- loading --------------------------------------------------------------------------------

  async function load() {
    const q = query();
    document.body.dataset.state = "loading";
    try {
      const [overview, recent] = await Promise.all([
        api("/dashboard/api/overview?" + q),
        api("/dashboard/api/calls?limit=25&" + q),
      ]);
      $("#banner").hidden = true;
      window.KeelAuth.signedIn();
      last = overview;
      render(overview);
      renderCalls(recent.calls, overview);
      loads += 1;
      document.body.dataset.loads = String(loads);
      document.body.dataset.state = "ready";
      $("#footer").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (err) {
      window.KeelAuth.failed(err);
    }
  }

  // -- drawing --------------------------------------------------------------------------------

  function colorOf(data) {
    const names = [...new Set([...(data.features || []), ...((data.options || {}).features || [])])].sort();
    return (name) => C.PALETTE[Math.max(names.indexOf(name), 0) % C.PALETTE.length];
  }

  function buckets(range) {
    const w = range.bucket_seconds;
    const out = [];
    for (let b = Math.floor(range.since / w); b * w < range.until; b++) out.push(b * w);
    return out;
  }

  function perFeature(data, times, field) {
    const color = colorOf(data);
    const index = new Map(times.map((t, i) => [t, i]));
    const byFeature = new Map();
    for (const row of data.series) {
      if (!byFeature.has(row.feature)) byFeature.set(row.feature, new Array(times.length).fill(0));
      const i = index.get(row.t);
      if (i !== undefined) byFeature.get(row.feature)[i] += row[field];
    }
    return [...byFeature.entries()].sort((a, b) => a[0].localeCompare(b[0]))
      .map(([name, values]) => ({ name, values, color: color(name) }));
  }

  function kpi(name, value, sub, tone) {
    const box = document.querySelector(`[data-kpi="${name}"]`);
    box.querySelector(".v").textContent = value;
    box.querySelector(".s").textContent = sub || "";
    box.classList.remove("bad", "good");
    if (tone) box.classList.add(tone);
  }

  function render(data) {
    const banner = $("#banner");
    if (!data.ledger) {
      banner.textContent = "The usage ledger is off (ledger.enabled: false): there is nothing to chart.";
      banner.className = "banner";
      banner.hidden = false;
    }
    const opts = data.options || { features: [], models: [], keys: [] };
    fillOptions("feature", [...new Set([...opts.features, ...data.features])]);
    fillOptions("model", opts.models);
    fillOptions("key", opts.keys);
    renderKpis(data);
    if (!data.ledger) return;
    const times = buckets(data.range);
    const width = data.range.bucket_seconds;
    C.stackedBars($("#c-cost"), { name: "cost", times, width, format: fmt.usd,
      series: perFeature(data, times, "cost_usd") });
    const tokens = perFeature(data, times, "input_tokens");
    const out = perFeature(data, times, "output_tokens");
    tokens.forEach((s, i) => { s.values = s.values.map((v, j) => v + out[i].values[j]); });
    C.stackedBars($("#c-tokens"), { name: "tokens", times, width, format: fmt.int, series: tokens });
    renderLatency(data, times, width);
    renderCache(data);
    renderRoutes(data);
    renderVerdicts(data);
    renderErrors(data);
    renderBudgets(data.budgets || []);
    renderAlerts(data.alerts || []);
  }

  function renderKpis(data) {
    const t = data.totals;
    if (!t) return;
    const cacheSaved = (data.cache || []).reduce((a, c) => a + c.saved_usd, 0);
    const total = data.latency.layers.total;
    kpi("calls", fmt.int(t.calls), t.blocked ? `${fmt.int(t.blocked)} blocked` : "none blocked");
    kpi("cost", fmt.usd(t.cost_usd), t.calls ? `${fmt.usd(t.cost_usd / t.calls)} per call` : "");
    kpi("tokens", fmt.int(t.input_tokens + t.output_tokens),
      `in ${fmt.int(t.input_tokens)} · out ${fmt.int(t.output_tokens)}`);
    kpi("errors", fmt.pct(t.error_rate), `${fmt.int(t.errors)} errors`, t.error_rate > 0.05 ? "bad" : null);
    kpi("cache", fmt.pct(t.cache_hit_rate), `${fmt.int(t.cache_hits)} hits`);
    kpi("saved", fmt.usd(t.saved_usd), `cache ${fmt.usd(cacheSaved)} · routing ${fmt.usd(t.saved_usd - cacheSaved)}`,
      t.saved_usd > 0 ? "good" : null);
    kpi("p95", fmt.ms(total.p95), `p50 ${fmt.ms(total.p50)}`);
  }

  function renderLatency(data, times, width) {
    const L = data.latency;
    const names = [["total", "whole call"], ["ttft", "first token"], ["input", "input"],
      ["context", "context"], ["llm", "llm"], ["validation", "validation"]];
    C.groupedBars($("#c-layers"), { name: "layers", format: fmt.ms,
      categories: names.filter(([k]) => L.layers[k].n > 0 || k === "total")
        .map(([k, label]) => ({ label, values: L.layers[k] })),
      groups: [{ key: "p50", color: "#9db7fb" }, { key: "p95", color: "#3b6ef5" }, { key: "p99", color: "#1d3c9c" }] });
    const index = new Map(times.map((t, i) => [t, i]));
    const p50 = new Array(times.length).fill(null);
    const p95 = new Array(times.length).fill(null);
    for (const row of L.series) {
      const i = index.get(row.t);
      if (i === undefined) continue;
      p50[i] = row.p50;
      p95[i] = row.p95;
    }
    C.lines($("#c-latency"), { name: "latency", times, width, format: fmt.ms,
      series: [{ name: "p50", color: "#9db7fb", values: p50 }, { name: "p95", color: "#3b6ef5", values: p95 }] });
    if (L.sample < data.totals.calls) {
      html("div", { class: "note" }, $("#c-layers"), `percentiles over the newest ${fmt.int(L.sample)} calls`);
    }
  }

  function renderCache(data) {
    const t = data.totals;
    const saved = data.cache.reduce((a, c) => a + c.saved_usd, 0);
    const order = ["exact", "semantic", "miss"];
    const slices = [...data.cache].sort((a, b) => order.indexOf(a.cache) - order.indexOf(b.cache))
      .map((c) => ({ label: c.cache === "miss" ? "miss" : `${c.cache} hit`, value: c.calls,
        color: CACHE_COLORS[c.cache] || "#5a6b8c" }));
    C.donut($("#c-cache"), { name: "cache", slices, center: fmt.pct(t.cache_hit_rate), sub: "hit rate",
      format: (v) => fmt.int(v) + " calls" });
    if (t.calls) html("div", { class: "note" }, $("#c-cache"), `the cache saved ${fmt.usd(saved)}`);
  }

  function renderRoutes(data) {
    const slices = data.routes.slice(0, 9).map((r, i) => ({
      label: r.route === "default" ? r.model : `${r.model} (${r.route})`,
      value: r.calls, color: C.PALETTE[(i + 2) % C.PALETTE.length] }));
    const rest = data.routes.slice(9).reduce((a, r) => a + r.calls, 0);
    if (rest) slices.push({ label: "other", value: rest, color: "#c7cedb" });
    const models = new Set(data.routes.map((r) => r.model)).size;
    C.donut($("#c-routes"), { name: "routes", slices, center: String(models),
      sub: models === 1 ? "model" : "models", format: (v) => fmt.int(v) + " calls" });
    const saved = data.routes.reduce((a, r) => a + r.saved_usd, 0);
    if (saved) html("div", { class: "note" }, $("#c-routes"), `routing saved ${fmt.usd(saved)}`);
  }

  function renderVerdicts(data) {
    C.bars($("#c-verdicts"), { name: "verdicts", format: fmt.int, labelWidth: 190,
      items: data.verdicts.slice(0, 12).map((v) => ({ label: v.reason, value: v.count,
        color: ACTION_COLORS[v.action] || "#5a6b8c", note: `${v.action} by ${v.stage}` })) });
    const actions = [...new Set(data.verdicts.map((v) => v.action))];
    if (actions.length) C.legend($("#c-verdicts"), actions.map((a) => ({ label: a, color: ACTION_COLORS[a] || "#5a6b8c" })));
  }

  function renderErrors(data) {
    C.bars($("#c-errors"), { name: "errors", format: fmt.int, labelWidth: 190,
      items: data.errors.slice(0, 12).map((e) => ({ label: `${e.http_status} ${e.code || e.status}`,
        value: e.count, color: e.status === "blocked" ? "#d99a16" : "#d64550",
        note: `${e.status}, last at ${new Date(e.last_ts * 1000).toLocaleTimeString()}` })) });
    if (data.errors.length) {
      C.legend($("#c-errors"), [{ label: "error", color: "#d64550" }, { label: "blocked (refused)", color: "#d99a16" }]);
    }
  }

  function renderBudgets(budgets) {
    const box = $("#c-budgets");
    box.replaceChildren();
    if (!budgets.length) return C.empty(box, "No budgets configured (budget: on a feature or key)");
    for (const b of budgets) {
      const row = html("div", { class: "budget", "data-budget": `${b.scope}:${b.name}:${b.period}` }, box);
      const head = html("div", { class: "row" }, row);
      const title = html("span", {}, head);
      html("b", {}, title, `${b.scope} ${b.name}`);
      title.appendChild(document.createTextNode(b.period === "day" ? " · today" : " · this month"));
      const track = html("div", { class: "track" }, row);
      if (b.spent_usd === null) {
        html("span", {}, head, "unavailable: " + b.error);
        continue;
      }
      const share = b.share || 0;
      row.classList.add(share >= 1 ? "over" : share >= 0.8 ? "warn" : "fine");
      html("span", {}, head, `${fmt.usd(b.spent_usd)} of ${fmt.usd(b.limit_usd)} (${fmt.pct(b.spent_usd / b.limit_usd)})`
        + (b.reserved_usd > 0 ? ` · ${fmt.usd(b.reserved_usd)} held` : ""));
      const spent = html("div", { class: "spent" }, track);
      spent.style.width = Math.min(100, (b.spent_usd / b.limit_usd) * 100) + "%";
      const held = html("div", { class: "held" }, track);
      held.style.width = Math.min(100, (b.reserved_usd / b.limit_usd) * 100) + "%";
      const hours = Math.max(0, (b.resets_at - Date.now() / 1000) / 3600);
      html("div", { class: "resets" }, row, hours < 48 ? `resets in ${hours.toFixed(hours < 10 ? 1 : 0)} h`
        : `resets ${new Date(b.resets_at * 1000).toLocaleDateString([], { month: "short", day: "numeric" })}`);
    }
  }

  const METRIC_FORMATS = { cost_usd: fmt.usd, error_rate: fmt.pct, p95_latency_ms: fmt.ms,
    guard_blocks: fmt.int, eval_score: (v) => (v === null || v === undefined ? "–" : v.toFixed(2)) };

  function ago(ts) {
    const s = Math.max(0, Date.now() / 1000 - ts);
    if (s < 90) return `${Math.round(s)} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    if (s < 172800) return `${Math.round(s / 3600)} h`;
    return `${Math.round(s / 86400)} d`;
  }

  function renderAlerts(alerts) {
    const box = $("#c-alerts");
    box.replaceChildren();
    if (!alerts.length) return C.empty(box, "No alert rules configured (alerts.rules in keel.yaml)");
    const list = html("ul", { class: "alerts" }, box);
    for (const a of alerts) {
      const li = html("li", { class: "alert-row lvl-" + a.level, "data-alert": `${a.rule}:${a.feature}`,
        "data-level": a.level }, list);
      html("span", { class: "level" }, li, a.level);
      const text = html("div", { class: "what" }, li);
      html("b", {}, text, a.rule);
      text.appendChild(document.createTextNode(` · ${a.feature}`));
      const f = METRIC_FORMATS[a.metric] || fmt.int;
      const limits = [a.warn != null ? `warn ${f(a.warn)}` : "", a.alert != null ? `alert ${f(a.alert)}` : ""]
        .filter(Boolean).join(", ");
      html("div", { class: "detail" }, text, `${a.metric.replace(/_/g, " ")} ${a.value === null ? "no data" : f(a.value)}`
        + (limits ? ` (${limits})` : "") + ` · ${a.level} for ${ago(a.since)}`);
    }
  }

  function renderCalls(calls, data) {
    const body = $("#calls tbody");
    body.replaceChildren();
    const color = colorOf(data);
    if (!calls.length) {
      const td = html("td", { colspan: 10, class: "empty" }, html("tr", {}, body), "No calls in this range");
      td.style.padding = "20px";
      return;
    }
    for (const c of calls) {
      const tr = html("tr", { "data-call": c.id }, body);
      html("td", {}, tr, new Date(c.ts * 1000).toLocaleString([], { month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }));
      const f = html("td", {}, tr);
      html("span", { class: "dot" }, f).style.background = color(c.feature);
      f.appendChild(document.createTextNode(c.feature));
      html("td", {}, tr, c.key_id || "–");
      html("td", {}, tr, c.model || "–");
      const st = html("td", {}, tr);
      html("span", { class: "pill " + c.status }, st, c.status === "ok" ? "ok" : `${c.http_status} ${c.error_code || c.status}`);
      html("td", { class: "num" }, tr, `${fmt.int(c.input_tokens)} / ${fmt.int(c.output_tokens)}`);
      html("td", { class: "num" }, tr, fmt.usd(c.cost_usd));
      html("td", { class: "num" }, tr, fmt.ms(c.latency_ms));
      html("td", {}, tr, [c.cache ? `${c.cache} hit` : "", c.route && c.route !== "default" ? c.route : ""]
        .filter(Boolean).join(" · ") || "–");
      const v = html("td", {}, tr);
      for (const verdict of c.verdicts) html("span", { class: "chip " + verdict.action }, v, verdict.reason);
    }
  }

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (last) render(last); }, 150);
  });
  window.addEventListener("hashchange", () => { readFilters(); load(); });

  window.KeelAuth.init(load);
  readFilters();
  schedule();
  load();
})();
