// keel dashboard: the admin key (kept in this tab's sessionStorage, sent as a Bearer header) and API calls.
"use strict";

(function () {
  const KEY = "keel.dashboard.key";
  const $ = (sel) => document.querySelector(sel);
  let reload = () => {};

  class AuthError extends Error {}

  async function api(path, options) {
    const opts = options || {};
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY);
    if (key) headers.Authorization = "Bearer " + key;
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, { method: opts.method || "GET", headers, cache: "no-store",
      credentials: "omit", body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    if (opts.raw && resp.ok) return resp;
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    const message = body && body.error ? body.error.message : `HTTP ${resp.status}`;
    if (resp.status === 401 || resp.status === 403) throw new AuthError(message);
    if (!resp.ok) throw new Error(message);
    return body;
  }

  function showLogin(message, isError) {
    const msg = $("#login-msg");
    msg.textContent = message;
    msg.classList.toggle("error", !!isError);
    $("#login").hidden = false;
    $("#login-key").focus();
    document.body.dataset.state = "login";
  }

  // An API error: ask for a key on 401/403 (forgetting one that was refused), else show a banner.
  function failed(err) {
    if (err instanceof AuthError) {
      const had = !!sessionStorage.getItem(KEY);
      if (had) sessionStorage.removeItem(KEY);
      showLogin(had ? err.message : "This gateway needs an admin API key to show its dashboard.", had);
      return;
    }
    const banner = $("#banner");
    banner.textContent = "Could not load: " + err.message;
    banner.className = "banner error";
    banner.hidden = false;
    document.body.dataset.state = "error";
  }

  function signedIn() {
    $("#signout").hidden = !sessionStorage.getItem(KEY);
  }

  function init(load) {
    reload = load;
    $("#login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const key = $("#login-key").value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY, key);
      $("#login-key").value = "";
      $("#login").hidden = true;
      reload();
    });
    $("#signout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      $("#signout").hidden = true;
      showLogin("Signed out. Enter an admin API key to open the dashboard.");
    });
  }

  window.KeelAuth = { api, failed, init, signedIn, loginOpen: () => !$("#login").hidden };
})();
