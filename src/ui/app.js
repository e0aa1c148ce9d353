// posterior's dashboard: one small hash-routed app over the HTTP/JSON API
// (proto3 JSON: lowerCamelCase names, 64-bit integers as strings). Plain
// JavaScript, no build step; charts by the vendored uPlot, the parallel
// coordinates on a hand-drawn canvas and the calibration figure in SVG.
//
// Every chart is a `.chart` element with `data-chart` (its name) so the
// browser test (tests/dashboard.rs) can find each one and check it drew.
"use strict";
(function () {
  const KEY_STORAGE = "posterior.apiKey";
  const REFRESH_STORAGE = "posterior.refreshSeconds";
  const DEFAULT_REFRESH_SECONDS = 5;
  // Rows per list page: each experiment row costs a GetExperiment (a P(best)
  // Monte Carlo on the server) per refresh, so pages stay small.
  const PAGE_SIZE = 20;
  // Saturated colours only: the browser test tells data from axes and grid
  // (greys) by saturation.
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#e377c2", "#17becf", "#bcbd22", "#8c564b", "#0b3d91"];
  const color = (i) => PALETTE[i % PALETTE.length];

  const main = document.getElementById("main");
  const statusEl = document.getElementById("status");
  const keyInput = document.getElementById("api-key");
  const refreshInput = document.getElementById("refresh");

  // ---- small helpers ------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const num = (v) => (v === undefined || v === null || v === "" ? NaN : Number(v));
  function fmt(v, digits = 3) {
    const x = num(v);
    if (!Number.isFinite(x)) return "—";
    if (x !== 0 && (Math.abs(x) >= 1e6 || Math.abs(x) < 1e-3)) return x.toExponential(2);
    return Number(x.toPrecision(digits + 1)).toString();
  }
  const pct = (v) => (Number.isFinite(num(v)) ? (100 * num(v)).toFixed(1) + "%" : "—");
  const int = (v) => (Number.isFinite(num(v)) ? num(v).toLocaleString("en-US") : "—");
  const enc = encodeURIComponent;
  function ago(ms) {
    if (!Number.isFinite(ms)) return "—";
    const s = Math.max(0, (Date.now() - ms) / 1000);
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 172800) return (s / 3600).toFixed(1) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  const when = (ms) => (Number.isFinite(num(ms)) && num(ms) > 0 ? new Date(num(ms)).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "—");

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  // GET an API path with the key from session storage (if any).
  async function api(path) {
    const headers = { accept: "application/json" };
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) headers["x-api-key"] = key;
    const res = await fetch(path, { headers, cache: "no-store" });
    let body = null;
    try { body = await res.json(); } catch (_) { body = null; }
    if (!res.ok) {
      const msg = (body && body.error && body.error.message) || res.statusText;
      throw new ApiError(res.status, `${res.status} ${msg}`);
    }
    return body;
  }

  // Which optional routes this server has (history and slices arrived in a
  // later version): read once from its OpenAPI document, so the page never
  // calls a route that is not there (no 404s in the console).
  let routesPromise = null;
  function serverRoutes() {
    if (!routesPromise) {
      routesPromise = fetch("/v1/openapi.json", { cache: "no-store" })
        .then((r) => (r.ok ? r.json() : { paths: {} }))
        .then((doc) => {
          const paths = Object.keys(doc.paths || {});
          return {
            history: paths.some((p) => /^\/v1\/experiments\/\{[^}]+\}\/history$/.test(p)),
            slices: paths.some((p) => /^\/v1\/studies\/\{[^}]+\}\/slices$/.test(p)),
          };
        })
        .catch(() => ({ history: false, slices: false }));
    }
    return routesPromise;
  }

  // ---- math: log-gamma and the posterior densities ----------------------

  // Lanczos approximation (g = 7, n = 9): relative error below 1e-13 for
  // x > 0, plenty for drawing densities.
  const LANCZOS = [0.99999999999980993, 676.5203681218851, -1259.1392167224028,
    771.32342877765313, -176.61502916214059, 12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  function lgamma(x) {
    if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lgamma(1 - x);
    x -= 1;
    let a = LANCZOS[0];
    const t = x + 7.5;
    for (let i = 1; i < 9; i++) a += LANCZOS[i] / (x + i);
    return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
  }
  function betaPdf(x, a, b) {
    if (x <= 0 || x >= 1) return null;
    return Math.exp(lgamma(a + b) - lgamma(a) - lgamma(b) + (a - 1) * Math.log(x) + (b - 1) * Math.log1p(-x));
  }
  // Student-t with `nu` degrees of freedom, location `loc`, scale `scale`:
  // the marginal posterior of a GAUSSIAN arm's mean (docs/model.md: 2α
  // degrees of freedom, location μ, scale √(β/(ακ))).
  function studentPdf(x, nu, loc, scale) {
    const z = (x - loc) / scale;
    return Math.exp(lgamma((nu + 1) / 2) - lgamma(nu / 2) - 0.5 * Math.log(nu * Math.PI) - Math.log(scale) -
      ((nu + 1) / 2) * Math.log1p((z * z) / nu));
  }

  // ---- charts ---------------------------------------------------------------

  // Each uPlot is kept on its element (`_uplot`) and destroyed with the page
  // body it lives in (uPlot listens on the window until destroyed).
  function destroyCharts(root) {
    for (const el of root.querySelectorAll(".chart")) if (el._uplot) { el._uplot.destroy(); el._uplot = null; }
  }
  // Width of a chart in a card of the two-column grid (or the full width).
  function chartWidth(full) {
    const w = main.clientWidth - 40;
    return Math.max(320, Math.floor(full ? w - 32 : (w - 16) / 2 - 34));
  }

  // A uPlot chart in a card: `title`, axis labels, series and aligned data.
  function plot({ name, legendClass, title, note, xLabel, yLabel, series, data, full, height, time, bands, xValues, xSplits, xDistr, yRange, hooks, xRange }) {
    const el = h("div", { class: "chart " + (legendClass || ""), "data-chart": name });
    const opts = {
      title,
      width: chartWidth(full),
      height: height || 260,
      scales: {
        x: { time: !!time, ...(xRange ? { range: xRange } : {}), ...(xDistr ? { distr: xDistr } : {}) },
        y: yRange ? { range: yRange } : {},
      },
      axes: [
        { label: xLabel, ...(xValues ? { values: xValues } : {}), ...(xSplits ? { splits: xSplits } : {}) },
        { label: yLabel, size: 60 },
      ],
      series: [{ label: xLabel }, ...series],
      bands: bands || [],
      legend: { show: true },
      cursor: { drag: { x: true, y: false } },
      hooks: hooks || {},
    };
    el._uplot = new uPlot(opts, data, el);
    return h("div", { class: "card" }, note ? h("div", { class: "chart-note", text: note }) : null, el);
  }
  const line = (label, i, extra) => ({ label, stroke: color(i), width: 2, spanGaps: true, points: { show: false }, ...extra });
  const dots = (label, stroke, size) => ({
    label, stroke, fill: stroke, width: 0, paths: () => null,
    points: { show: true, size: size || 7, stroke, fill: stroke },
  });
  const empty = (title, text) => h("div", { class: "card" }, h("div", { class: "chart-title", text: title }), h("div", { class: "empty", text }));
  function hexAlpha(hex, a) {
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${a})`;
  }

  // ---- the page loop ---------------------------------------------------------

  let timer = null;
  let generation = 0;
  let page = null; // { render(container) }

  function refreshSeconds() {
    const s = Number(refreshInput.value);
    return Number.isFinite(s) && s >= 1 ? s : DEFAULT_REFRESH_SECONDS;
  }

  function setStatus(text, isError) {
    statusEl.textContent = text;
    statusEl.className = isError ? "error" : "";
  }

  // Render the current page into a fresh container and swap it in, so a
  // refresh never shows a half-built page; inputs live in `page.controls`,
  // built once per route, so typing survives refreshes.
  async function refresh() {
    clearTimeout(timer);
    const gen = ++generation;
    const current = page;
    const body = h("div", { class: "page-body" });
    try {
      await current.render(body);
      if (gen !== generation) { destroyCharts(body); return; }
      destroyCharts(current.bodyEl);
      current.bodyEl.replaceChildren(...body.childNodes);
      setStatus("updated " + new Date().toLocaleTimeString("en-GB"), false);
    } catch (e) {
      destroyCharts(body);
      if (gen !== generation) return;
      destroyCharts(current.bodyEl);
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        current.bodyEl.replaceChildren(h("div", { class: "error-box" },
          `${e.message}. Enter an API key with the "decide" scope above.`));
      } else {
        current.bodyEl.replaceChildren(h("div", { class: "error-box", text: e.message || String(e) }));
      }
      setStatus("error", true);
    }
    if (gen === generation) timer = setTimeout(refresh, refreshSeconds() * 1000);
  }

  function route() {
    const hash = location.hash.replace(/^#\/?/, "");
    const slash = hash.indexOf("/");
    const kind = slash < 0 ? hash : hash.slice(0, slash);
    let name = slash < 0 ? "" : hash.slice(slash + 1);
    try { name = decodeURIComponent(name); } catch (_) { /* keep as typed */ }
    for (const a of document.querySelectorAll("header nav a")) a.classList.remove("active");
    if (page) destroyCharts(page.bodyEl);
    if (kind === "studies" && name) page = studyPage(name);
    else if (kind === "studies") page = studiesPage();
    else if (kind === "experiments" && name) page = experimentPage(name);
    else page = experimentsPage();
    document.getElementById(kind === "studies" ? "nav-studies" : "nav-experiments").classList.add("active");
    page.bodyEl = h("div", { class: "page-body" }, h("div", { class: "empty", text: "loading…" }));
    main.replaceChildren(...(page.controls || []), page.bodyEl);
    refresh();
  }

  // ---- sortable, paginated tables --------------------------------------------

  // `columns`: [{ key, label, num, value(row), cell(row) }]. Sorting applies
  // to the rows of the current page (the API pages in name order).
  function table(columns, rows, sort, onSort) {
    const sorted = rows.slice();
    const col = columns.find((c) => c.key === sort.key);
    if (col) {
      const v = col.value || ((r) => r[col.key]);
      sorted.sort((a, b) => {
        const x = v(a), y = v(b);
        const c = typeof x === "number" && typeof y === "number"
          ? (Number.isNaN(x) ? -Infinity : x) - (Number.isNaN(y) ? -Infinity : y)
          : String(x).localeCompare(String(y));
        return sort.dir === "asc" ? c : -c;
      });
    }
    const head = h("tr", {}, columns.map((c) => h("th", {
      class: ["sortable", c.num ? "num" : "", sort.key === c.key ? "sorted-" + sort.dir : ""].join(" "),
      onclick: () => onSort(c.key),
      text: c.label,
    })));
    const body = sorted.map((r) => h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : "" }, c.cell ? c.cell(r) : String(r[c.key])))));
    return h("table", { class: "list" }, h("thead", {}, head), h("tbody", {}, body));
  }

  function pager(state) {
    return h("div", { class: "pager" },
      h("button", { disabled: state.index === 0, onclick: () => { state.index--; refresh(); } }, "‹ previous"),
      h("span", { class: "muted", text: `page ${state.index + 1}` }),
      h("button", { disabled: !state.next, onclick: () => { state.tokens[state.index + 1] = state.next; state.index++; refresh(); } }, "next ›"));
  }
  function sorter(state, key) {
    if (state.sort.key === key) state.sort.dir = state.sort.dir === "asc" ? "desc" : "asc";
    else state.sort = { key, dir: "asc" };
    refresh();
  }

  // ---- Experiments ------------------------------------------------------------

  function leaderOf(arms) {
    let best = null;
    for (const a of arms || []) if (!a.retired && (!best || num(a.probBest) > num(best.probBest))) best = a;
    return best;
  }

  // The time of the last history point whose reward count grew: the last
  // reward's interval (the API has no per-reward time).
  function lastRewardMs(points) {
    for (let i = points.length - 1; i > 0; i--) {
      const total = (p) => p.arms.reduce((s, a) => s + num(a.rewards), 0);
      if (total(points[i]) > total(points[i - 1])) return num(points[i].timeMs);
    }
    return NaN;
  }

  // Last rewards are looked for in this much recent history.
  const LAST_REWARD_WINDOW_MS = 6 * 3600 * 1000;

  const experimentsState = { tokens: [""], index: 0, next: "", sort: { key: "name", dir: "asc" } };
  function experimentsPage() {
    const st = experimentsState;
    return {
      controls: [h("h1", { text: "Experiments" })],
      async render(body) {
        const routes = await serverRoutes();
        const list = await api(`/v1/experiments?pageSize=${PAGE_SIZE}&pageToken=${enc(st.tokens[st.index] || "")}`);
        st.next = list.nextPageToken || "";
        const listings = list.experiments && list.experiments.length ? list.experiments : (list.names || []).map((name) => ({ name }));
        const rows = await Promise.all(listings.map(async (l) => {
          const got = await api(`/v1/experiments/${enc(l.name)}`);
          const leader = leaderOf(got.arms);
          let last = NaN;
          if (routes.history) {
            const hist = await api(`/v1/experiments/${enc(l.name)}/history?sinceMs=${Date.now() - LAST_REWARD_WINDOW_MS}`);
            last = lastRewardMs(hist.points || []);
          }
          return {
            name: l.name,
            model: got.experiment.model || l.model || "BERNOULLI",
            arms: (got.arms || []).filter((a) => !a.retired).length,
            rewards: (got.arms || []).reduce((s, a) => s + num(a.rewards), 0),
            leader: leader ? leader.name : "",
            probBest: leader ? num(leader.probBest) : NaN,
            status: l.status || "RUNNING",
            lastReward: last,
          };
        }));
        if (!rows.length) {
          body.append(h("div", { class: "card empty", text: "No experiments yet (create one with POST /v1/experiments)." }));
          return;
        }
        const columns = [
          { key: "name", label: "name", cell: (r) => h("a", { href: "#/experiments/" + enc(r.name), text: r.name }) },
          { key: "model", label: "model" },
          { key: "arms", label: "arms", num: true },
          { key: "rewards", label: "rewards", num: true, cell: (r) => int(r.rewards) },
          { key: "leader", label: "leader" },
          { key: "probBest", label: "P(best) of leader", num: true, cell: (r) => pct(r.probBest) },
          { key: "status", label: "status", cell: (r) => h("span", { class: "badge " + r.status, text: r.status }) },
          { key: "lastReward", label: "last reward", num: true, cell: (r) => h("span", { title: routes.history ? when(r.lastReward) : "this server keeps no history" }, ago(r.lastReward)) },
        ];
        body.append(h("div", { class: "card" }, table(columns, rows, st.sort, (k) => sorter(st, k)), pager(st)));
      },
    };
  }

  // ---- Experiment -------------------------------------------------------------

  // Densities of every active arm on one grid spanning their intervals.
  function densitySeries(exp, arms) {
    const gaussian = exp.model === "GAUSSIAN";
    const lo = Math.min(...arms.map((a) => num(a.lower)));
    const hi = Math.max(...arms.map((a) => num(a.upper)));
    const pad = Math.max((hi - lo) * 0.35, 1e-9);
    let x0 = lo - pad, x1 = hi + pad;
    if (!gaussian) { x0 = Math.max(x0, 0); x1 = Math.min(x1, 1); }
    const n = 400;
    const xs = new Set();
    for (let i = 0; i <= n; i++) xs.add(x0 + ((x1 - x0) * i) / n);
    // The mode of a narrow posterior can fall between grid points: add each
    // arm's mean so its peak is drawn.
    for (const a of arms) xs.add(num(a.mean));
    const grid = [...xs].filter((x) => x >= x0 && x <= x1).sort((a, b) => a - b);
    const ys = arms.map((a) => grid.map((x) => {
      const y = gaussian
        ? studentPdf(x, 2 * num(a.alpha), num(a.mu), Math.sqrt(num(a.beta) / (num(a.alpha) * num(a.kappa))))
        : betaPdf(x, num(a.alpha), num(a.beta));
      return y !== null && Number.isFinite(y) ? y : null;
    }));
    return [grid, ...ys];
  }

  function intervalBar(a, lo, hi) {
    const span = hi - lo || 1;
    const left = (100 * (num(a.lower) - lo)) / span, width = (100 * (num(a.upper) - num(a.lower))) / span;
    const mid = (100 * (num(a.mean) - lo)) / span;
    const bar = h("span", { class: "interval-bar" });
    const fill = h("span", {});
    fill.style.left = left + "%";
    fill.style.width = Math.max(width, 0.5) + "%";
    const tick = h("i", {});
    tick.style.left = mid + "%";
    bar.append(fill, tick);
    return bar;
  }

  const HISTORY_WINDOWS = { "1 h": 3600e3, "24 h": 86400e3, "7 d": 7 * 86400e3 };

  function experimentPage(name) {
    const threshold = h("input", { type: "number", step: "any", placeholder: "none", size: 8, id: "threshold" });
    const windowSel = h("select", { id: "history-window" }, Object.keys(HISTORY_WINDOWS).map((k) => h("option", { value: k, selected: k === "24 h" }, k)));
    threshold.addEventListener("change", () => refresh());
    windowSel.addEventListener("change", () => refresh());
    return {
      controls: [
        h("h1", {}, h("a", { href: "#/experiments", text: "Experiments" }), " / ", name),
        h("div", { class: "controls" },
          h("label", {}, "threshold ", threshold, h("span", { class: "muted" }, " (P(mean > threshold) per arm)")),
          h("label", {}, "history ", windowSel)),
      ],
      async render(body) {
        const routes = await serverRoutes();
        const t = threshold.value.trim();
        const q = t !== "" && Number.isFinite(Number(t)) ? `?threshold=${enc(t)}` : "";
        const [got, verdict] = await Promise.all([
          api(`/v1/experiments/${enc(name)}${q}`),
          api(`/v1/experiments/${enc(name)}:verdict`),
        ]);
        const exp = got.experiment;
        const arms = got.arms || [];
        const active = arms.filter((a) => !a.retired);
        const idx = new Map(arms.map((a, i) => [a.name, i]));

        const facts = [
          ["model", exp.model], ["goal", exp.goal], ["policy", exp.policy],
          ["control", exp.controlArm || "—"], ["half-life", num(exp.halfLifeSeconds) > 0 ? exp.halfLifeSeconds + " s" : "none"],
          ["created", when(exp.createdMs)], ["P(best) draws", int(got.probBestDraws)],
        ];
        body.append(h("div", { class: "card" },
          exp.description ? h("p", { text: exp.description }) : null,
          h("div", {}, facts.map(([k, v]) => h("span", { style: "margin-right:1.5em" }, h("span", { class: "muted", text: k + " " }), String(v)))),
          h("p", {}, h("span", { class: "badge " + (verdict.status || "RUNNING"), text: verdict.status || "RUNNING" }),
            verdict.winner ? ` winner: ${verdict.winner}. ` : " ", verdict.reason || "")));

        // Posterior densities, one plot.
        const thr = q ? Number(t) : null;
        if (active.length) {
          const data = densitySeries(exp, active);
          const gaussian = exp.model === "GAUSSIAN";
          body.append(plot({
            name: "density", full: true, height: 300,
            title: gaussian ? "Posterior of each arm's mean (Student-t)" : "Posterior of each arm's rate (Beta)",
            note: thr !== null ? `dashed line: threshold ${thr}` : null,
            xLabel: gaussian ? "mean reward" : "reward rate", yLabel: "density",
            series: active.map((a) => line(a.name, idx.get(a.name))),
            data,
            hooks: thr === null ? {} : {
              draw: [(u) => {
                const x = u.valToPos(thr, "x", true);
                const ctx = u.ctx;
                ctx.save();
                ctx.strokeStyle = "#333";
                ctx.setLineDash([6, 4]);
                ctx.beginPath();
                ctx.moveTo(x, u.bbox.top);
                ctx.lineTo(x, u.bbox.top + u.bbox.height);
                ctx.stroke();
                ctx.restore();
              }],
            },
          }));
        }

        // The arms' table.
        const lo = Math.min(...arms.map((a) => num(a.lower)));
        const hi = Math.max(...arms.map((a) => num(a.upper)));
        const hasThr = arms.some((a) => a.probAboveThreshold !== undefined && a.probAboveThreshold !== null);
        const hasLift = arms.some((a) => a.liftMean !== undefined && a.liftMean !== null);
        body.append(h("div", { class: "card" }, h("table", {},
          h("thead", {}, h("tr", {}, ["arm", "rewards", "evidence", "mean", "95% interval", "P(best)",
            hasThr ? `P(mean > ${t})` : null, hasLift ? `lift vs ${exp.controlArm} (95%)` : null, "expected loss"]
            .filter((c) => c !== null).map((c, i) => h("th", { class: i === 0 || i === 4 ? "" : "num", text: c })))),
          h("tbody", {}, arms.map((a) => h("tr", { class: a.retired ? "muted" : "" },
            h("td", {}, h("span", { class: "swatch", style: `background:${color(idx.get(a.name))}` }), a.name, a.retired ? " (retired)" : ""),
            h("td", { class: "num", text: int(a.rewards) }),
            h("td", { class: "num", text: fmt(a.evidence) }),
            h("td", { class: "num", text: fmt(a.mean, 4) }),
            h("td", {}, `[${fmt(a.lower, 4)}, ${fmt(a.upper, 4)}]`, intervalBar(a, lo, hi)),
            h("td", { class: "num", text: pct(a.probBest) }),
            hasThr ? h("td", { class: "num", text: pct(a.probAboveThreshold) }) : null,
            hasLift ? h("td", { class: "num", text: a.liftMean === undefined || a.name === exp.controlArm ? "—" : `${fmt(a.liftMean)} [${fmt(a.liftLower)}, ${fmt(a.liftUpper)}]` }) : null,
            h("td", { class: "num", text: fmt(a.expectedLoss) })))))));

        // Over time, from the history.
        body.append(h("h2", { text: "Over time" }));
        if (!routes.history) {
          body.append(empty("History", "no history yet (this server does not record history)"));
          return;
        }
        const since = Date.now() - HISTORY_WINDOWS[windowSel.value];
        const hist = await api(`/v1/experiments/${enc(name)}/history?sinceMs=${since}`);
        const points = hist.points || [];
        if (points.length < 2) {
          body.append(empty("History", "no history yet (one point is recorded per interval)"));
          return;
        }
        body.append(historyCharts(points, arms.map((a) => a.name), idx));
      },
    };
  }

  // Buckets of the count charts over the history window.
  const MAX_BUCKETS = 120;

  function historyCharts(points, armNames, idx) {
    const names = armNames.filter((n) => points.some((p) => p.arms.some((a) => a.name === n)));
    if (!names.length) return empty("History", "no history of the current arms yet");
    const xs = points.map((p) => num(p.timeMs) / 1000);
    const col = (n, f) => points.map((p, i) => {
      const a = p.arms.find((x) => x.name === n);
      return a ? f(a, p, i) : null;
    });
    const armOf = (p, n) => p.arms.find((x) => x.name === n);
    const grid = h("div", { class: "grid" });
    grid.append(plot({
      name: "history-prob-best", time: true, title: "P(best) per arm", xLabel: "time", yLabel: "P(best)", yRange: [0, 1],
      series: names.map((n) => line(n, idx.get(n))), data: [xs, ...names.map((n) => col(n, (a) => num(a.probBest)))],
    }));
    // Mean with its 95% band: three series per arm, the band between upper
    // and lower filled.
    const series = [], data = [xs], bands = [];
    names.forEach((n) => {
      const c = color(idx.get(n));
      series.push(line(n + " mean", idx.get(n)));
      series.push({ label: n + " 95% upper", stroke: hexAlpha(c, 0.35), width: 1, points: { show: false } });
      series.push({ label: n + " 95% lower", stroke: hexAlpha(c, 0.35), width: 1, points: { show: false } });
      data.push(col(n, (a) => num(a.mean)), col(n, (a) => num(a.upper)), col(n, (a) => num(a.lower)));
      bands.push({ series: [data.length - 2, data.length - 1], fill: hexAlpha(c, 0.12) });
    });
    grid.append(plot({ name: "history-mean", legendClass: "bands", time: true, title: "Mean and 95% interval per arm", xLabel: "time", yLabel: "mean reward", series, data, bands }));
    // Counts per recording interval are noisy at a day of minutes: summed
    // over buckets of `step` points (at most MAX_BUCKETS bars' worth).
    const step = Math.max(1, Math.ceil(points.length / MAX_BUCKETS));
    const bx = [], decisions = names.map(() => []), rewards = names.map(() => []);
    for (let start = 1; start < points.length; start += step) {
      const end = Math.min(points.length, start + step);
      bx.push(num(points[end - 1].timeMs) / 1000);
      names.forEach((n, k) => {
        let d = 0, r = 0, seen = false;
        for (let i = start; i < end; i++) {
          const a = armOf(points[i], n), prev = armOf(points[i - 1], n);
          if (!a) continue;
          seen = true;
          d += num(a.decisions);
          if (prev) r += Math.max(0, num(a.rewards) - num(prev.rewards));
        }
        decisions[k].push(seen ? d : null);
        rewards[k].push(seen ? r : null);
      });
    }
    const minutes = (num(points[Math.min(points.length - 1, step)].timeMs) - num(points[0].timeMs)) / 60000;
    const per = minutes >= 1 ? `${Math.round(minutes)} min` : "interval";
    const totals = bx.map((_, j) => decisions.reduce((s, col) => s + (col[j] || 0), 0));
    // A few buckets are no line: draw them as points too.
    const few = { points: { show: bx.length < 20, size: 7 } };
    grid.append(plot({
      name: "history-traffic", time: true, title: `Traffic share per arm (decisions per ${per})`, xLabel: "time", yLabel: "share of decisions", yRange: [0, 1],
      series: names.map((n) => line(n, idx.get(n), few)),
      data: [bx, ...decisions.map((col) => col.map((d, j) => (d !== null && totals[j] > 0 ? d / totals[j] : null)))],
    }));
    grid.append(plot({
      name: "history-rewards", time: true, title: `Rewards per ${per} per arm`, xLabel: "time", yLabel: "rewards",
      series: names.map((n) => line(n, idx.get(n), few)),
      data: [bx, ...rewards],
    }));
    return grid;
  }

  // ---- Studies ------------------------------------------------------------------

  // A parameter's kind and domain from its proto3 JSON (`float`, `int`,
  // `ordinal` or `categorical`).
  function domain(p) {
    if (p.float) return { kind: "float", low: num(p.float.low), high: num(p.float.high), log: !!p.float.log };
    if (p.int) return { kind: "int", low: num(p.int.low), high: num(p.int.high), log: !!p.int.log };
    if (p.ordinal) return { kind: "ordinal", values: (p.ordinal.values || []).map(num) };
    if (p.categorical) return { kind: "categorical", values: p.categorical.values || [] };
    return { kind: "unknown" };
  }
  const valueOf = (v) => (!v ? null : v.category !== undefined ? v.category : num(v.number));
  const showValue = (v) => { const x = valueOf(v); return typeof x === "string" ? x : fmt(x, 4); };
  function configText(trial) {
    if (!trial || !trial.params) return "—";
    return Object.entries(trial.params).map(([k, v]) => `${k}=${showValue(v)}`).join(", ");
  }
  function feasible(trial, constraints) {
    return (constraints || []).every((c) => {
      const m = num((trial.metrics || {})[c.metric]);
      return Number.isFinite(m) && m <= num(c.upperBound);
    });
  }

  const studiesState = { tokens: [""], index: 0, next: "", sort: { key: "name", dir: "asc" } };
  function studiesPage() {
    const st = studiesState;
    return {
      controls: [h("h1", { text: "Studies" })],
      async render(body) {
        const list = await api(`/v1/studies?pageSize=${PAGE_SIZE}&pageToken=${enc(st.tokens[st.index] || "")}`);
        st.next = list.nextPageToken || "";
        const rows = await Promise.all((list.names || []).map(async (name) => {
          const s = await api(`/v1/studies/${enc(name)}`);
          const trials = s.trials || [];
          const by = (state) => trials.filter((t) => (t.state || "PENDING") === state).length;
          return {
            name,
            objective: objectivesLabel(s.study),
            trials: trials.length, completed: by("COMPLETED"), failed: by("FAILED"), pending: by("PENDING"),
            best: s.best ? num(s.best.value) : NaN,
            recommended: s.recommended && s.recommended.trial ? `${configText(s.recommended.trial)} (mean ${fmt(s.recommended.mean)} ± ${fmt(s.recommended.std)})` : "—",
            exhausted: s.exhausted ? "yes" : "no",
          };
        }));
        if (!rows.length) {
          body.append(h("div", { class: "card empty", text: "No studies yet (create one with POST /v1/studies)." }));
          return;
        }
        const columns = [
          { key: "name", label: "name", cell: (r) => h("a", { href: "#/studies/" + enc(r.name), text: r.name }) },
          { key: "objective", label: "objective" },
          { key: "trials", label: "trials", num: true, cell: (r) => `${r.trials} (${r.completed} done, ${r.failed} failed, ${r.pending} pending)` },
          { key: "best", label: "best", num: true, cell: (r) => fmt(r.best, 4) },
          { key: "recommended", label: "recommended" },
          { key: "exhausted", label: "exhausted" },
        ];
        body.append(h("div", { class: "card" }, table(columns, rows, st.sort, (k) => sorter(st, k)), pager(st)));
      },
    };
  }

  // ---- Study ------------------------------------------------------------------------

  function studyPage(name) {
    return {
      controls: [h("h1", {}, h("a", { href: "#/studies", text: "Studies" }), " / ", name)],
      async render(body) {
        const routes = await serverRoutes();
        const [s, slices] = await Promise.all([
          api(`/v1/studies/${enc(name)}`),
          routes.slices ? api(`/v1/studies/${enc(name)}/slices?points=50`) : Promise.resolve(null),
        ]);
        const study = s.study;
        // Several objectives: the page charts the first (a trial's value).
        const first = firstObjective(study);
        const goal = first.goal || "MINIMIZE";
        const objName = first.name || "objective";
        const constraints = study.constraints || [];
        const trials = (s.trials || []).slice().sort((a, b) => num(a.trialId) - num(b.trialId));
        body.append(h("div", { class: "card" },
          h("div", {}, h("span", { class: "muted", text: "objective " }), objectivesLabel(study),
            constraints.length ? h("span", {}, h("span", { class: "muted", text: "   constraints " }), constraints.map((c) => `${c.metric} ≤ ${fmt(c.upperBound)}`).join(", ")) : null),
          h("div", {}, h("span", { class: "muted", text: "parameters " }), (study.parameters || []).map((p) => {
            const d = domain(p);
            return `${p.name} ${d.kind === "float" || d.kind === "int" ? `[${fmt(d.low)}, ${fmt(d.high)}]${d.log ? " log" : ""}` : `{${d.values.join(", ")}}`}`;
          }).join(" · ")),
          h("div", {}, h("span", { class: "muted", text: "trials " }), `${trials.length}`, s.exhausted ? " (space exhausted)" : "")));

        const completed = trials.filter((t) => t.state === "COMPLETED" && Number.isFinite(num(t.value)));
        if (!trials.length) {
          body.append(h("div", { class: "card empty", text: "No trials yet (Suggest, then Observe)." }));
          return;
        }
        const grid = h("div", { class: "grid" });
        body.append(grid);
        grid.append(objectiveChart(trials, completed, constraints, goal, objName));
        grid.append(parallelCoordinates(study, completed, trials.filter((t) => t.state === "FAILED"), objName));
        body.append(recommendedCard(s, constraints));

        body.append(h("h2", { text: "Where the model thinks the optimum is" }));
        const g2 = h("div", { class: "grid" });
        body.append(g2);
        g2.append(calibrationFigure(s.calibration));
        if (!slices) {
          g2.append(empty("Slices", "no slices yet (this server does not compute them)"));
        } else {
          for (const sl of sliceList(slices)) g2.append(sliceChart(sl, study, completed, objName));
        }
      },
    };
  }

  // A study has `objective`, or `objectives` (2 to 4) instead.
  function firstObjective(study) {
    return study.objective || (study.objectives || [])[0] || {};
  }

  function objectivesLabel(study) {
    const all = study.objective ? [study.objective] : (study.objectives || []);
    return all.map((o) => `${o.goal || "MINIMIZE"} ${o.name}`).join(", ");
  }

  function objectiveChart(trials, completed, constraints, goal, objName) {
    const xs = trials.map((t) => num(t.trialId));
    const vals = completed.map((t) => num(t.value));
    const worst = vals.length ? (goal === "MAXIMIZE" ? Math.min(...vals) : Math.max(...vals)) : 0;
    let best = NaN;
    const bestSoFar = [], ok = [], infeasible = [], failed = [];
    for (const t of trials) {
      const v = num(t.value);
      const done = t.state === "COMPLETED" && Number.isFinite(v);
      const feas = done && feasible(t, constraints);
      if (feas && (!Number.isFinite(best) || (goal === "MAXIMIZE" ? v > best : v < best))) best = v;
      bestSoFar.push(Number.isFinite(best) ? best : null);
      ok.push(feas ? v : null);
      infeasible.push(done && !feas ? v : null);
      failed.push(t.state === "FAILED" ? worst : null);
    }
    return plot({
      name: "objective", title: `${objName} per trial, best feasible so far`,
      note: "failed trials are drawn at the worst observed value; infeasible = a constraint violated",
      xLabel: "trial", yLabel: objName,
      series: [
        { label: "best so far", stroke: color(0), width: 2, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } },
        dots("feasible", color(2)), dots("infeasible", color(3)), dots("failed", color(1), 9),
      ],
      data: [xs, bestSoFar, ok, infeasible, failed],
    });
  }

  // Viridis-like ramp (5 stops), for colouring by objective.
  const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  function ramp(t) {
    const x = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
    const i = Math.min(RAMP.length - 2, Math.floor(x)), f = x - i;
    const c = RAMP[i].map((v, k) => Math.round(v + f * (RAMP[i + 1][k] - v)));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }

  // Position of a value on a parameter's axis, 0 (bottom) to 1 (top).
  function axisPos(d, v) {
    if (v === null || v === undefined) return null;
    if (d.kind === "float" || d.kind === "int") {
      const f = d.log && d.low > 0 ? Math.log : (x) => x;
      const span = f(d.high) - f(d.low);
      return span > 0 ? (f(v) - f(d.low)) / span : 0.5;
    }
    if (d.kind === "ordinal" || d.kind === "categorical") {
      const i = d.values.findIndex((x) => x === v);
      return d.values.length > 1 ? i / (d.values.length - 1) : 0.5;
    }
    return null;
  }
  // Tick labels of an axis: [position 0..1, text]; every level of an
  // ordinal or categorical parameter (up to 12, else the two ends).
  function axisTicks(d) {
    if (d.kind === "float" || d.kind === "int") return [[0, fmt(d.low)], [1, fmt(d.high)]];
    if (d.kind === "ordinal" || d.kind === "categorical") {
      const n = d.values.length;
      const show = n <= 12 ? d.values.map((v, i) => i) : [0, n - 1];
      return show.map((i) => [n > 1 ? i / (n - 1) : 0.5, d.kind === "ordinal" ? fmt(d.values[i]) : String(d.values[i])]);
    }
    return [];
  }

  // Parallel coordinates on a canvas: one vertical axis per parameter and
  // one for the objective; a polyline per trial coloured by its objective
  // (failed trials grey, dashed, stopping before the objective axis).
  function parallelCoordinates(study, completed, failed, objName) {
    const params = study.parameters || [];
    const width = chartWidth(false), height = 300;
    const dpr = window.devicePixelRatio || 1;
    const canvas = h("canvas", { class: "pc", width: Math.round(width * dpr), height: Math.round(height * dpr) });
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
    const ctx = canvas.getContext("2d");
    ctx.scale(dpr, dpr);
    const vals = completed.map((t) => num(t.value));
    const vmin = Math.min(...vals), vmax = Math.max(...vals);
    const maximize = firstObjective(study).goal === "MAXIMIZE";
    // Colour by rank, best yellow: a few bad trials would otherwise squeeze
    // every good one into one colour.
    const order = completed.slice().sort((a, b) => (maximize ? 1 : -1) * (num(a.value) - num(b.value)));
    const rank = new Map(order.map((t, i) => [t, order.length > 1 ? i / (order.length - 1) : 1]));
    const axes = params.map((p) => ({ name: p.name, d: domain(p) }));
    const n = axes.length + 1;
    const left = 50, right = 50, top = 36, bottom = 40;
    const ax = (i) => left + ((width - left - right) * i) / (n - 1 || 1);
    const ay = (t) => top + (1 - t) * (height - top - bottom);
    const objPos = (v) => (vmax > vmin ? (v - vmin) / (vmax - vmin) : 0.5);
    function polyline(t, stroke, dashed, withObjective) {
      ctx.beginPath();
      ctx.strokeStyle = stroke;
      ctx.setLineDash(dashed ? [4, 3] : []);
      let started = false;
      axes.forEach((a, i) => {
        const p = axisPos(a.d, valueOf((t.params || {})[a.name]));
        if (p === null || !Number.isFinite(p)) return;
        if (started) ctx.lineTo(ax(i), ay(p)); else { ctx.moveTo(ax(i), ay(p)); started = true; }
      });
      if (withObjective) ctx.lineTo(ax(n - 1), ay(objPos(num(t.value))));
      ctx.stroke();
    }
    ctx.lineWidth = 1.5;
    for (const t of failed) polyline(t, "rgba(120,120,120,0.7)", true, false);
    // Worst first, so the best lines end up on top.
    for (const t of order) polyline(t, ramp(rank.get(t)), false, true);
    ctx.setLineDash([]);
    ctx.strokeStyle = "#333";
    ctx.fillStyle = "#222";
    const objTicks = [[0, fmt(vmin)], [1, fmt(vmax)]];
    const labels = [...axes.map((a) => [a.name, axisTicks(a.d)]), [objName, objTicks]];
    labels.forEach(([label, ticks], i) => {
      ctx.beginPath();
      ctx.moveTo(ax(i), ay(0));
      ctx.lineTo(ax(i), ay(1));
      ctx.stroke();
      ctx.textAlign = "center";
      ctx.font = "bold 12px system-ui, sans-serif";
      ctx.fillText(label, ax(i), top - 16);
      ctx.font = "11px system-ui, sans-serif";
      ctx.textAlign = "right";
      for (const [at, text] of ticks) {
        // A white halo keeps labels readable over the lines.
        const y = ay(at) + (at === 1 ? 9 : at === 0 ? -2 : 4);
        ctx.lineWidth = 3;
        ctx.strokeStyle = "#fff";
        ctx.strokeText(text, ax(i) - 4, y);
        ctx.fillText(text, ax(i) - 4, y);
        ctx.strokeStyle = "#333";
        ctx.lineWidth = 1;
      }
    });
    ctx.textAlign = "left";
    ctx.fillText(`colour: rank of ${objName} (yellow best, purple worst); grey dashed: failed`, left, height - 8);
    const el = h("div", { class: "chart", "data-chart": "parallel-coordinates" }, h("div", { class: "chart-title", text: "All trials: parameters and objective (parallel coordinates)" }), canvas);
    return h("div", { class: "card" }, el);
  }

  function recommendedCard(s, constraints) {
    const rec = s.recommended;
    if (!rec || !rec.trial) return h("div", { class: "card empty", text: "No recommendation yet (needs a feasible completed trial)." });
    const t = rec.trial;
    return h("div", { class: "card" },
      h("div", { class: "chart-title", text: `Recommended configuration (trial ${t.trialId})` }),
      h("p", {}, `posterior mean ${fmt(rec.mean, 4)} ± ${fmt(rec.std, 3)} (sd); observed ${fmt(t.value, 4)}`),
      h("table", { class: "compact" },
        h("thead", {}, h("tr", {}, h("th", { text: "parameter" }), h("th", { text: "value" }))),
        h("tbody", {}, (s.study.parameters || []).map((p) => [p.name, (t.params || {})[p.name]]).map(([k, v]) => h("tr", {}, h("td", { text: k }), h("td", { class: "num", text: showValue(v) }))))),
      constraints.length ? h("table", { class: "compact", style: "margin-top:.8em" },
        h("thead", {}, h("tr", {}, ["constraint", "observed", "bound", "margin"].map((c) => h("th", { text: c })))),
        h("tbody", {}, constraints.map((c) => {
          const m = num((t.metrics || {})[c.metric]);
          const margin = num(c.upperBound) - m;
          return h("tr", {}, h("td", { text: `${c.metric} ≤ ${fmt(c.upperBound)}` }), h("td", { class: "num", text: fmt(m, 4) }),
            h("td", { class: "num", text: fmt(c.upperBound, 4) }),
            h("td", { class: "num", style: margin < 0 ? "color:#b00" : "", text: (margin >= 0 ? "+" : "") + fmt(margin, 3) }));
        }))) : null);
  }

  // The calibration figure: coverage of the 90% leave-one-out predictive
  // intervals of the last fit against the 90% a calibrated GP reaches (and
  // the 0.7 the alert fires below), as an SVG bar.
  function calibrationFigure(cal) {
    const title = "GP calibration: coverage of 90% leave-one-out intervals";
    const coverage = typeof cal === "number" ? cal : cal && typeof cal === "object" ? num(cal.coverage) : NaN;
    if (!Number.isFinite(coverage)) return empty(title, "no calibration yet (needs a model fit)");
    const W = 480, H = 120, L = 40, R = 20, x = (v) => L + (W - L - R) * v;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("width", "100%");
    svg.setAttribute("role", "img");
    const add = (tag, attrs, text) => {
      const e = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      if (text !== undefined) e.textContent = text;
      svg.append(e);
      return e;
    };
    add("rect", { x: x(0), y: 30, width: x(1) - x(0), height: 30, fill: "#eef1f4" });
    add("rect", { class: "data", x: x(0), y: 30, width: x(Math.min(1, Math.max(0, coverage))) - x(0), height: 30, fill: coverage < 0.7 ? "#d62728" : "#2ca02c" });
    for (const [v, label] of [[0.9, "target 90%"], [0.7, "alert 70%"]]) {
      add("line", { x1: x(v), x2: x(v), y1: 24, y2: 66, stroke: "#333", "stroke-dasharray": "4 3" });
      add("text", { x: x(v), y: 18, "text-anchor": "middle", "font-size": 11 }, label);
    }
    for (const v of [0, 0.5, 1]) add("text", { x: x(v), y: 80, "text-anchor": "middle", "font-size": 11 }, `${v * 100}%`);
    add("text", { x: (L + W - R) / 2, y: 100, "text-anchor": "middle", "font-size": 12 }, "share of trials inside their 90% LOO predictive interval");
    add("text", { x: x(0) + 6, y: 50, "font-size": 12, fill: "#fff" }, pct(coverage));
    const extra = cal && typeof cal === "object" ? Object.entries(cal).filter(([k]) => k !== "coverage").map(([k, v]) => `${k} ${fmt(v)}`).join(", ") : "";
    return h("div", { class: "card" }, h("div", { class: "chart", "data-chart": "calibration" },
      h("div", { class: "chart-title", text: title }), extra ? h("div", { class: "chart-note", text: extra }) : null, svg));
  }

  // The slices of a GetStudySlices answer: [{ parameter, x[], labels?,
  // mean[], sd[] }], read from the proto3 JSON.
  function sliceList(resp) {
    const raw = resp.slices || resp.parameters || [];
    return raw.map((s) => {
      const pts = s.points || null;
      const xs = pts ? pts.map((p) => p.value !== undefined ? p.value : p.x) : (s.values || s.x || []);
      return {
        parameter: s.parameter || s.name,
        xs: xs.map((v) => (v && typeof v === "object" ? valueOf(v) : v)),
        mean: pts ? pts.map((p) => num(p.mean)) : (s.mean || s.means || []).map(num),
        sd: pts ? pts.map((p) => num(p.sd !== undefined ? p.sd : p.std)) : (s.sd || s.std || s.stds || []).map(num),
      };
    });
  }

  function sliceChart(sl, study, completed, objName) {
    const param = (study.parameters || []).find((p) => p.name === sl.parameter) || { name: sl.parameter };
    const d = domain(param);
    const categorical = sl.xs.some((x) => typeof x === "string");
    const levels = categorical ? sl.xs.map(String) : null;
    const toX = (v) => (categorical ? levels.indexOf(String(v)) : num(v));
    const gx = sl.xs.map(toX);
    // Observed trials at their value of this parameter. Several can share a
    // value: each gets its own x, apart by a hair (numbers) or a visible
    // jitter (levels), so all are drawn.
    const used = new Set(gx);
    const span = Math.max(...gx) - Math.min(...gx) || 1;
    const obs = [];
    completed.forEach((t, i) => {
      let x = toX(valueOf((t.params || {})[sl.parameter]));
      if (!Number.isFinite(x) || (categorical && x < 0)) return;
      if (categorical) x += ((i % 9) - 4) * 0.03;
      while (used.has(x)) x += span * 1e-9;
      used.add(x);
      obs.push([x, num(t.value)]);
    });
    // Aligned x for uPlot: the grid and the observed x together.
    const xs = [...used].sort((a, b) => a - b);
    const gi = new Map(gx.map((x, i) => [x, i]));
    const at = (arr, x) => (gi.has(x) ? arr[gi.get(x)] : null);
    const ov = new Map(obs);
    const mean = xs.map((x) => at(sl.mean, x));
    const up = xs.map((x) => { const m = at(sl.mean, x), sd = at(sl.sd, x); return m === null ? null : m + 2 * sd; });
    const lo = xs.map((x) => { const m = at(sl.mean, x), sd = at(sl.sd, x); return m === null ? null : m - 2 * sd; });
    const seen = xs.map((x) => (ov.has(x) ? ov.get(x) : null));
    const logX = d.log && !categorical && Math.min(...xs) > 0;
    return plot({
      name: "slice-" + sl.parameter,
      title: `${objName} along ${sl.parameter}, others at the recommended configuration`,
      note: "GP mean ± 2 sd; dots: every completed trial at its value of this parameter (its other parameters vary)",
      xLabel: sl.parameter + (logX ? " (log scale)" : ""), yLabel: objName,
      xDistr: logX ? 3 : undefined,
      // Exactly the parameter's range (a log scale would round out to decades).
      xRange: categorical ? [-0.5, levels.length - 0.5] : (u, lo, hi) => [lo, hi],
      xValues: categorical ? (u, ticks) => ticks.map((t) => (Number.isInteger(t) && levels[t] !== undefined ? levels[t] : ""))
        : logX ? (u, ticks) => ticks.map((t) => (t === null ? "" : fmt(t, 3))) : undefined,
      // Levels at their index; a log axis at 5 log-spaced values (uPlot's
      // own log ticks are decades, too few over most parameter ranges).
      xSplits: categorical ? () => levels.map((_, i) => i)
        : logX ? (u) => { const a = Math.log(u.scales.x.min), b = Math.log(u.scales.x.max); return [0, 1, 2, 3, 4].map((k) => Math.exp(a + ((b - a) * k) / 4)); }
        : undefined,
      series: [
        line("GP mean", 0, { points: { show: categorical, size: 8 } }),
        { label: "mean + 2 sd", stroke: hexAlpha(color(0), 0.4), width: 1, spanGaps: true, points: { show: false } },
        { label: "mean − 2 sd", stroke: hexAlpha(color(0), 0.4), width: 1, spanGaps: true, points: { show: false } },
        dots("observed", color(1), 6),
      ],
      data: [xs, mean, up, lo, seen],
      bands: [{ series: [2, 3], fill: hexAlpha(color(0), 0.15) }],
    });
  }

  // ---- start ----------------------------------------------------------------------

  keyInput.value = sessionStorage.getItem(KEY_STORAGE) || "";
  refreshInput.value = sessionStorage.getItem(REFRESH_STORAGE) || DEFAULT_REFRESH_SECONDS;
  document.getElementById("settings").addEventListener("submit", (e) => e.preventDefault());
  keyInput.addEventListener("change", () => {
    const k = keyInput.value.trim();
    if (k) sessionStorage.setItem(KEY_STORAGE, k); else sessionStorage.removeItem(KEY_STORAGE);
    // Not "error" any more while the new key is tried.
    setStatus("loading…", false);
    refresh();
  });
  refreshInput.addEventListener("change", () => {
    sessionStorage.setItem(REFRESH_STORAGE, String(refreshSeconds()));
    refresh();
  });
  window.addEventListener("hashchange", route);
  // Without a hash, show the experiments (replaceState: no hashchange, so
  // one first render).
  if (!location.hash) history.replaceState(null, "", "#/experiments");
  route();
})();
