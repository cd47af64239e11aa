// keel review queue: label sampled calls pass/fail with a score, a note and a corrected answer; export JSONL.
"use strict";

(function () {
  const { api } = window.KeelAuth;
  const $ = (sel) => document.querySelector(sel);
  const state = { current: null, verdict: null, loads: 0 };

  function el(tag, attrs, parent, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function when(ts) {
    return new Date(ts * 1000).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit",
      minute: "2-digit", hour12: false });
  }

  function query() {
    const p = new URLSearchParams({ status: $("#r-status").value });
    if ($("#r-feature").value) p.set("feature", $("#r-feature").value);
    return p.toString();
  }

  function kpi(name, value, sub) {
    const box = document.querySelector(`[data-kpi="${name}"]`);
    box.querySelector(".v").textContent = value;
    box.querySelector(".s").textContent = sub || "";
  }

  async function load(selectId) {
    document.body.dataset.state = "loading";
    try {
      const data = await api("/dashboard/api/review/items?" + query());
      window.KeelAuth.signedIn();
      $("#banner").hidden = true;
      render(data);
      const ids = data.items.map((i) => i.id);
      const next = selectId !== undefined && ids.includes(selectId) ? selectId
        : ids.includes(state.current) ? state.current : ids[0];
      if (next !== undefined) await select(next);
      else showItem(null);
      state.loads += 1;
      document.body.dataset.loads = String(state.loads);
      document.body.dataset.state = "ready";
    } catch (err) {
      window.KeelAuth.failed(err);
    }
  }

  function render(data) {
    const c = data.counts;
    kpi("pending", String(c.pending), "waiting for a reviewer");
    kpi("reviewed", String(c.reviewed), `${c.passed} passed · ${c.failed} failed`);
    kpi("passrate", c.reviewed ? Math.round((100 * c.passed) / c.reviewed) + "%" : "–", "of reviewed answers");
    const s = data.sampling;
    kpi("sampling", s.sample > 0 ? `${+(s.sample * 100).toFixed(2)}%` : "off",
      s.sample > 0 ? (s.features ? "of " + s.features.join(", ") : "of every feature's answered calls")
        : "set review.sample in keel.yaml");
    const select = $("#r-feature");
    const current = select.value;
    select.replaceChildren();
    el("option", { value: "" }, select, "all");
    for (const f of [...new Set([...data.features, ...(current ? [current] : [])])].sort()) {
      el("option", { value: f }, select, f);
    }
    select.value = current;
    const list = $("#queue");
    list.replaceChildren();
    if (!data.items.length) {
      el("li", { class: "empty" }, list, $("#r-status").value === "pending" ? "Nothing to review" : "No items");
    }
    for (const item of data.items) {
      const li = el("li", { "data-item": item.id, class: item.id === state.current ? "on" : "" }, list);
      const top = el("div", { class: "row" }, li);
      el("b", {}, top, item.feature);
      el("span", { class: "muted" }, top, when(item.ts));
      const sub = el("div", { class: "row" }, li);
      const origin = item.source && item.source !== "production" ? item.source : item.key_id;
      el("span", { class: "muted" }, sub, [item.model, origin].filter(Boolean).join(" · "));
      if (item.verdict) el("span", { class: "pill " + (item.verdict === "pass" ? "ok" : "error") }, sub, item.verdict);
      li.addEventListener("click", () => select(item.id));
    }
  }

  function text(content) {
    if (typeof content === "string") return content;
    if (Array.isArray(content)) {
      return content.map((p) => (p && p.type === "text" ? p.text : `[${(p && p.type) || "part"}]`)).join("\n");
    }
    return content == null ? "" : JSON.stringify(content);
  }

  async function select(id) {
    const item = await api(`/dashboard/api/review/items/${id}`);
    state.current = id;
    for (const li of document.querySelectorAll("#queue li")) li.classList.toggle("on", li.dataset.item === String(id));
    showItem(item);
  }

  function setVerdict(v) {
    state.verdict = v;
    for (const b of document.querySelectorAll(".verdict button")) b.classList.toggle("on", b.dataset.verdict === v);
  }

  function showItem(item) {
    $("#item-empty").hidden = !!item;
    $("#item-body").hidden = !item;
    if (!item) { state.current = null; return; }
    const meta = $("#item-meta");
    meta.replaceChildren();
    for (const [k, v] of [["feature", item.feature], ["model", item.model], ["key", item.key_id],
      ["prompt", item.prompt_version], ["time", when(item.ts)],
      ["source", item.source !== "production" ? item.source : null], ["call", item.call_id]]) {
      if (!v) continue;
      const span = el("span", {}, meta);
      el("i", {}, span, k);
      span.appendChild(document.createTextNode(" " + v));
    }
    const box = $("#item-messages");
    box.replaceChildren();
    for (const m of item.messages) {
      const b = el("div", { class: "bubble " + (m.role || "user") }, box);
      el("div", { class: "role" }, b, m.role || "user");
      el("div", { class: "text" }, b, text(m.content));
    }
    $("#item-answer").textContent = item.answer || "(no text)";
    setVerdict(item.verdict);
    const scored = item.score !== null && item.score !== undefined;
    $("#score").value = scored ? item.score : 1;
    $("#score-none").checked = item.verdict ? !scored : false;
    $("#score-out").textContent = Number($("#score").value).toFixed(2);
    $("#note").value = item.note || "";
    $("#corrected").value = item.corrected || "";
    $("#saved").textContent = item.reviewed_at ? `reviewed by ${item.reviewer || "–"} at ${when(item.reviewed_at)}` : "";
  }

  for (const b of document.querySelectorAll(".verdict button")) {
    b.addEventListener("click", () => setVerdict(b.dataset.verdict));
  }
  $("#score").addEventListener("input", () => {
    $("#score-out").textContent = Number($("#score").value).toFixed(2);
    $("#score-none").checked = false;
  });

  $("#label").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!state.verdict) {
      $("#saved").textContent = "choose pass or fail first";
      return;
    }
    const body = { verdict: state.verdict, score: $("#score-none").checked ? null : Number($("#score").value),
      note: $("#note").value || null, corrected: $("#corrected").value || null };
    try {
      await api(`/dashboard/api/review/items/${state.current}`, { method: "POST", body });
      const ids = [...document.querySelectorAll("#queue li[data-item]")].map((li) => Number(li.dataset.item));
      const after = ids[ids.indexOf(state.current) + 1];
      state.current = null;
      await load(after);
    } catch (err) {
      window.KeelAuth.failed(err);
    }
  });

  $("#export").addEventListener("click", async () => {
    const feature = $("#r-feature").value;
    try {
      const resp = await api("/dashboard/api/review/export?format=cases" + (feature ? "&feature=" +
        encodeURIComponent(feature) : ""), { raw: true });
      const url = URL.createObjectURL(await resp.blob());
      const a = el("a", { href: url, download: `review-${feature || "all"}.jsonl` }, document.body);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (err) {
      window.KeelAuth.failed(err);
    }
  });

  $("#filters").addEventListener("change", () => { state.current = null; load(); });
  window.KeelAuth.init(() => load());
  load();
})();
