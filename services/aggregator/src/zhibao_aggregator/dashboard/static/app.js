/* 数据直报指挥中心: drill-down, charts, live updates and the alert panel.
 * Plain JS, no build step. All data comes from this origin (the aggregator and its
 * alert proxy); only aggregate counts are shown, never personal data. */
"use strict";

(function () {
  const TOKEN_KEY = "zhibao.token";
  const LANG_KEY = "zhibao.lang";
  const CHART_DAYS = 30;
  const SPARK_DAYS = 14;
  const CODE_LENGTHS = [2, 4, 6, 9, 12]; /* the levels' code lengths until /me tells them */

  /* A link such as http://127.0.0.1:8102/#token=… (printed by `zhibao up --demo`) signs in:
   * the fragment never reaches a server; it is stored like a typed token and removed.
   * It replaces a different token already stored here only when the user agrees: a
   * link from someone else would otherwise have the officer on duty act (acknowledge,
   * resolve) under that person's token, or see only the units it chose. */
  const fragment = new URLSearchParams(location.hash.slice(1));
  const linked = fragment.get("token");
  if (linked) {
    const stored = localStorage.getItem(TOKEN_KEY);
    const texts = window.ZB_TEXTS[localStorage.getItem(LANG_KEY) || "zh"] || {};
    if (!stored || stored === linked || window.confirm(texts.replaceToken)) {
      localStorage.setItem(TOKEN_KEY, linked);
    }
    history.replaceState(null, "", location.pathname + location.search);
  }

  const S = {
    token: localStorage.getItem(TOKEN_KEY) || "",
    lang: localStorage.getItem(LANG_KEY) || "zh",
    me: null, unit: "", day: "", names: {}, figures: null, children: [],
    series: {}, earsAlerts: [], alerts: [], openTimelines: new Set(),
    source: null, charts: {}, timers: {}, generation: 0,
    overview: [], colourBy: "risk", afterDraw: [], overviewWired: false,
  };
  /* Load and update times of the overview, read by the tests and `zhibao bench`:
   * load_ms from the navigation's start to the overview first drawn; each update from
   * a live rollup's arrival to the overview redrawn with it (performance.now() ms). */
  const TIMINGS = { load_ms: null, updates: [], units: 0 };
  window.zhibaoTimings = TIMINGS;

  const $ = (id) => document.getElementById(id);
  const t = (key) => (window.ZB_TEXTS[S.lang] || {})[key] || key;

  /* ---------- small DOM helpers (text only, never HTML from data) ---------- */

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "onclick") node.addEventListener("click", v);
      else if (v !== undefined && v !== null) node.setAttribute(k, v);
    });
    children.flat().forEach((c) => node.append(c instanceof Node ? c : String(c)));
    return node;
  }

  function badge(cls, text) {
    return el("span", { class: `badge ${cls}` }, text);
  }

  function fmt(value) {
    return value === null || value === undefined ? t("noneYet") : String(value);
  }

  function localTime(iso) {
    const d = iso ? new Date(iso) : new Date();
    return d.toLocaleString(S.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
  }

  /* ---------- API ---------- */

  async function api(path, options) {
    const headers = { Authorization: `Bearer ${S.token}` };
    const response = await fetch(path, { ...(options || {}), headers });
    if (!response.ok) {
      const error = new Error(`${response.status} ${path}`);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  function addDays(day, n) {
    const d = new Date(`${day}T00:00:00Z`);
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }

  function seriesOf(code, metric, days) {
    const from = addDays(S.day, -(days - 1));
    const q = `metric=${metric}&from=${from}&to=${S.day}`;
    return api(`/v1/units/${code}/series?${q}`).then((r) => r.points);
  }

  /* ---------- names, texts, status ---------- */

  function remember(unit) {
    if (unit) S.names[unit.code] = unit;
  }

  function unitName(code) {
    const u = S.names[code];
    if (!u) return code;
    return S.lang === "en" && u.name_en ? u.name_en : u.name;
  }

  function applyTexts() {
    document.querySelectorAll("[data-i18n]").forEach((node) => {
      node.textContent = t(node.dataset.i18n);
    });
    document.title = t("title");
    document.documentElement.lang = S.lang === "zh" ? "zh-CN" : "en";
    $("lang").textContent = S.lang === "zh" ? "English" : "中文";
  }

  function setLive(on) {
    const node = $("live");
    node.className = `live ${on ? "on" : "off"}`;
    node.dataset.i18n = on ? "online" : "offline";
    node.textContent = t(node.dataset.i18n);
  }

  function markUpdated() {
    const node = $("last-update");
    const now = new Date();
    node.dateTime = now.toISOString();
    node.textContent = localTime(now.toISOString());
  }

  function reportingStatus(f) {
    const expected = f.reports_expected || 0;
    const missing = f.reports_missing || 0;
    const overdue = f.reports_overdue || 0;
    const late = f.reports_late || 0;
    if (overdue > 0) return ["missing", expected > 1 ? ` ${overdue}/${expected}` : ""];
    /* before the deadline a report not yet in is pending, not missing */
    if (missing > 0) return ["pending", expected > 1 ? ` ${missing}/${expected}` : ""];
    if (late > 0) return ["late", expected > 1 ? ` ${late}` : ""];
    return ["reported", expected > 1 ? ` ${expected}/${expected}` : ""];
  }

  /* ---------- login ---------- */

  function showLogin(message) {
    $("login").hidden = false;
    $("main").hidden = true;
    $("login-error").textContent = message || "";
  }

  async function start() {
    try {
      S.me = await api("/v1/dashboard/me");
    } catch (error) {
      showLogin(error.status === 401 || error.status === 403 ? t("badToken") : error.message);
      return;
    }
    S.me.units.forEach(remember);
    $("login").hidden = true;
    $("main").hidden = false;
    const wanted = location.hash.slice(1);
    const home = S.me.units[0].code;
    await navigate(covers(wanted) ? wanted : home);
  }

  function covers(code) {
    return !!code && /^\d+$/.test(code) && S.me.units.some((u) => code.startsWith(u.code));
  }

  /* ---------- navigation ---------- */

  async function navigate(code) {
    S.unit = code;
    if (location.hash.slice(1) !== code) history.replaceState(null, "", `#${code}`);
    await loadAll();
    connectLive();
  }

  /* Each load has a generation; answers of a load superseded by a newer one (the user
   * clicked on) are dropped, so a slow answer never paints the wrong unit. */
  function current(generation) {
    return generation === S.generation;
  }

  async function loadAll() {
    const generation = ++S.generation;
    const q = S.day ? `?date=${S.day}` : "";
    const [described, rollup, children, overview] = await Promise.all([
      api(`/v1/units/${S.unit}`),
      api(`/v1/units/${S.unit}/rollup${q}`),
      api(`/v1/units/${S.unit}/children${q}`),
      api(`/v1/units/${S.unit}/overview${q}`),
    ]);
    if (!current(generation)) return;
    remember(described.unit);
    described.children.forEach(remember);
    S.day = rollup.date;
    $("day").value = S.day;
    S.figures = rollup.figures;
    S.children = children.children;
    S.overview = overview.units;
    S.overview.forEach(remember);
    await ensureAncestorNames();
    if (!current(generation)) return;
    renderCrumbs();
    renderKpis();
    renderTasks();
    renderNeeds();
    renderChildren();
    drawOverview();
    markUpdated();
    await Promise.all([loadSparklines(generation), loadCharts(generation), loadAlerts(generation),
      loadOverdue(generation), loadPoints(generation), loadQuality(generation)]);
  }

  function ancestors(code) {
    const home = S.me.units.find((u) => code.startsWith(u.code));
    const lengths = S.me.code_lengths || CODE_LENGTHS;
    return lengths.filter((n) => n >= home.code.length && n <= code.length).map((n) =>
      code.slice(0, n));
  }

  async function ensureAncestorNames() {
    const unknown = ancestors(S.unit).filter((c) => !S.names[c]);
    const found = await Promise.all(unknown.map((c) => api(`/v1/units/${c}`)));
    found.forEach((d) => remember(d.unit));
  }

  function renderCrumbs() {
    const nav = $("crumbs");
    nav.replaceChildren();
    ancestors(S.unit).forEach((code, i, all) => {
      if (i > 0) nav.append(el("span", { class: "sep" }, "›"));
      const last = i === all.length - 1;
      nav.append(last ? el("strong", {}, unitName(code))
        : el("a", { "data-code": code, onclick: () => navigate(code) }, unitName(code)));
    });
    $("unit-name").textContent = unitName(S.unit);
  }

  /* ---------- key figures and the table ---------- */

  function renderKpis() {
    const f = S.figures;
    const [status, detail] = reportingStatus(f);
    const items = [
      ["screenings", f.screenings], ["fevers", f.fevers], ["newConfirmed", f.new_confirmed],
      ["currentConfirmed", f.current_confirmed], ["inIsolation", f.in_isolation],
      ["cumulativeConfirmed", f.cumulative_confirmed],
      ["daysSince", f.days_since_last_new_confirmed], ["reportsMissing", f.reports_overdue],
      ["pointsActive", f.points_active], ["pointsOverdue", f.points_overdue_for_lifting],
      ["pointCases", f.point_cases_after_declaration], ["isolationsOverdue", f.isolations_overdue],
    ];
    const box = $("kpis");
    box.replaceChildren(...items.map(([key, value]) => el("div", { class: "kpi", "data-kpi": key },
      el("div", { class: "label" }, t(key)), el("div", { class: "value" }, fmt(value)))));
    box.append(el("div", { class: "kpi", "data-kpi": "risk" },
      el("div", { class: "label" }, `${t("risk")} / ${t("reporting")}`),
      el("div", { class: "value" }, badge(`risk-${f.risk_level}`, t(f.risk_level)), " ",
        badge(`rep-${status}`, t(status) + detail))));
    box.append(el("div", { class: "kpi", "data-kpi": "response" },
      el("div", { class: "label" }, t("responseLevel")),
      el("div", { class: "value" }, levelBadge(f), ...suggestionBadge(f))));
  }

  function levelBadge(f) {
    const level = f.declared_level || "none";
    return badge(`level-${level}`, t(`level_${level}`));
  }

  /* ---------- epidemic points (疫点) under the unit ---------- */

  async function loadPoints(generation) {
    let found = [];
    try {
      found = (await api(`/v1/units/${S.unit}/points?date=${S.day}`)).points;
    } catch (error) {
      found = [];
    }
    if (!current(generation)) return;
    const shown = found.filter((p) => p.active);
    $("point-list").replaceChildren(...shown.map((p) => el("li", {
      "data-point": p.point, class: p.overdue_for_lifting ? "overdue" : "",
    }, `${unitName(p.unit)} ${[p.compound, p.building].filter(Boolean).join(" ")} · `,
    `${t("plannedLifting")} ${p.planned_lifting}`,
    p.overdue_for_lifting ? [" ", badge("rep-missing", t("pointOverdue"))] : [],
    p.cases_after_declaration ? ` · ${t("pointCases")} ${p.cases_after_declaration}` : "")));
    $("no-points").hidden = shown.length > 0;
  }

  /* A declared level's suggestion (raise or lower): a hint, never a declaration. */
  function suggestionBadge(f) {
    if (!f.level_suggestion) return [];
    return [" ", el("span", { class: `badge suggest suggest-${f.level_suggestion}`,
      "data-suggestion": f.level_suggestion, title: t("suggestHint") },
    t(`suggest_${f.level_suggestion}`))];
  }

  function rowCells(f) {
    const [status, detail] = reportingStatus(f);
    return [
      ["screenings", f.screenings], ["fevers", f.fevers], ["new_confirmed", f.new_confirmed],
      ["current_confirmed", f.current_confirmed], ["in_isolation", f.in_isolation],
    ].map(([metric, v]) => el("td", { class: "num", "data-metric": metric }, fmt(v))).concat([
      el("td", { "data-metric": "risk_level" }, badge(`risk-${f.risk_level}`, t(f.risk_level))),
      el("td", { "data-metric": "reporting" }, badge(`rep-${status}`, t(status) + detail)),
      el("td", { "data-metric": "response" }, levelBadge(f), ...suggestionBadge(f)),
    ]);
  }

  function renderChildren() {
    const body = document.querySelector("#children tbody");
    body.replaceChildren(...S.children.map((c) => {
      const row = el("tr", { id: `row-${c.code}`, "data-code": c.code,
        onclick: () => navigate(c.code) },
      el("td", {}, unitName(c.code)), rowCells(c.figures), el("td", { class: "spark" }));
      return row;
    }));
    $("no-children").hidden = S.children.length > 0;
    $("children").hidden = S.children.length === 0;
  }

  function updateRow(code, figures) {
    const row = $(`row-${code}`);
    if (!row) return;
    const spark = row.querySelector("td.spark");
    row.replaceChildren(el("td", {}, unitName(code)), ...rowCells(figures), spark);
    row.classList.remove("flash");
    void row.offsetWidth; // restart the highlight animation
    row.classList.add("flash");
  }

  function sparkline(points) {
    const values = points.map((p) => p.value);
    const max = Math.max(1, ...values);
    const w = 90; const h = 20;
    const step = values.length > 1 ? w / (values.length - 1) : w;
    const coords = values.map((v, i) => `${(i * step).toFixed(1)},${(h - 1 - (v / max) * (h - 2)).toFixed(1)}`);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("width", w); svg.setAttribute("height", h);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", coords.join(" "));
    line.setAttribute("fill", "none"); line.setAttribute("stroke", "#3fa7ff");
    line.setAttribute("stroke-width", "1.5");
    svg.append(line);
    svg.setAttribute("aria-label", values.join(","));
    return svg;
  }

  async function loadSparklines(generation) {
    await Promise.all(S.children.map(async (c) => {
      const points = await seriesOf(c.code, "fevers", SPARK_DAYS);
      if (!current(generation)) return;
      const cell = document.querySelector(`#row-${c.code} td.spark`);
      if (cell) cell.replaceChildren(sparkline(points));
    }));
  }

  /* ---------- the overview treemap (全域总览) ---------- */

  function childOf(code) {
    const lengths = S.me.code_lengths || CODE_LENGTHS;
    const next = lengths.find((n) => n > S.unit.length);
    return next && code.length >= next ? code.slice(0, next) : code;
  }

  /* One click goes one level down: to the shown unit's child that holds the clicked unit. */
  function onOverviewClick(info) {
    const code = info.data && info.data.code;
    if (code && code !== S.unit && code.startsWith(S.unit)) navigate(childOf(code));
  }

  function renderLegend() {
    const colours = S.colourBy === "level" ? window.ZBOverview.LEVEL : window.ZBOverview.RISK;
    const key = (k) => (S.colourBy === "level" ? `level_${k}` : k);
    $("overview-legend").replaceChildren(...Object.entries(colours).map(([k, colour]) =>
      el("span", { "data-legend": k }, el("i", { style: `background:${colour}` }), t(key(k)))));
  }

  /* Draws the overview; calls ``done`` once ECharts has finished rendering it. */
  function drawOverview(done) {
    const view = chart("overview");
    $("overview-name").textContent = unitName(S.unit);
    renderLegend();
    if (!view) return;
    if (!S.overviewWired) {
      view.on("click", onOverviewClick);
      view.on("finished", () => (S.afterDraw.splice(0)).forEach((fn) => fn()));
      S.overviewWired = true;
    }
    S.afterDraw.push(() => {
      if (TIMINGS.load_ms === null) TIMINGS.load_ms = performance.now();
      TIMINGS.units = S.overview.length;
      document.getElementById("overview").dataset.drawn = S.unit;
      if (done) done();
    });
    view.setOption(window.ZBOverview.option(S.overview, S.unit, S.colourBy, t,
      (u) => (S.lang === "en" && u.name_en ? u.name_en : u.name)), true);
  }

  /* Live rollups refresh the overview with one request, at most one in flight and one
   * waiting, at most one a second (hundreds of units may change at once). */
  const OVERVIEW_MIN_MS = 1000;
  const refresh = { running: false, again: false, waiting: [], last: 0 };

  function refreshOverview(received) {
    if (received !== undefined) refresh.waiting.push(received);
    if (refresh.running) { refresh.again = true; return; }
    const wait = refresh.last + OVERVIEW_MIN_MS - performance.now();
    if (wait > 0) { later("overview", () => refreshOverview(), wait); return; }
    refresh.running = true;
    refresh.again = false;
    refresh.last = performance.now();
    const covered = refresh.waiting.splice(0);
    const generation = S.generation;
    api(`/v1/units/${S.unit}/overview?date=${S.day}`).then((answer) => {
      if (!current(generation)) return;
      S.overview = answer.units;
      drawOverview(() => covered.forEach((at) => TIMINGS.updates.push(
        { received: at, drawn: performance.now(), ms: performance.now() - at, wall: Date.now() })));
    }).catch(() => {}).finally(() => {
      refresh.running = false;
      if (refresh.again) refreshOverview();
    });
  }

  /* ---------- needs and key persons (figures present once the response loop has them) ---------- */

  const NEED_FIGURES = [
    ["needs_open", "needsOpen"], ["needs_overdue", "needsOverdue"],
    ["needs_median_hours", "needsMedianHours"],
  ];

  /* grid_workload: {grids, workers, households, households_per_worker, grids_over_standard,
   * standard: [300, 500], workers_needed}; null where no grids are registered. */
  function workloadTile(w) {
    const busy = w && w.standard && w.households_per_worker > w.standard[1];
    const detail = w ? [`${t("grids")} ${fmt(w.grids)}`, `${t("gridWorkers")} ${fmt(w.workers)}`,
      `${t("gridsOver")} ${fmt(w.grids_over_standard)}`,
      w.standard ? `${t("standard")} ${w.standard.join("–")}` : ""].filter(Boolean).join(" · ") : "";
    return el("div", { class: `kpi${busy ? " warn" : ""}`, "data-need-figure": "grid_workload" },
      el("div", { class: "label" }, t("gridWorkload")),
      el("div", { class: "value" }, fmt(w ? w.households_per_worker : null)),
      detail ? el("div", { class: "label" }, detail) : "");
  }

  function renderNeeds() {
    const f = S.figures;
    const present = NEED_FIGURES.filter(([key]) => key in f);
    const tiles = present.map(([key, text]) => el("div", {
      class: `kpi${key === "needs_overdue" && f[key] > 0 ? " warn" : ""}`, "data-need-figure": key,
    }, el("div", { class: "label" }, t(text)), el("div", { class: "value" }, fmt(f[key]))));
    if ("grid_workload" in f) tiles.push(workloadTile(f.grid_workload));
    const persons = f.key_persons && typeof f.key_persons === "object" ? f.key_persons : null;
    if (persons) {
      const total = Object.values(persons).reduce((a, b) => a + (Number(b) || 0), 0);
      tiles.push(el("div", { class: "kpi", "data-need-figure": "key_persons" },
        el("div", { class: "label" }, t("keyPersons")), el("div", { class: "value" }, String(total))));
    }
    $("needs-kpis").replaceChildren(...tiles);
    $("key-persons").replaceChildren(...Object.entries(persons || {}).map(([k, v]) =>
      el("span", { class: "chip", "data-key-person": k }, `${t(`kp_${k}`)} ${fmt(v)}`)));
    $("needs-panel").hidden = tiles.length === 0;
  }

  /* ---------- charts ---------- */

  const CASE_CLASSES = [
    ["new_suspected", "newSuspected", "#e6a23c"], ["new_confirmed", "newConfirmed", "#e0463a"],
    ["new_asymptomatic", "newAsymptomatic", "#b37feb"],
  ];

  async function loadCharts(generation) {
    const metrics = ["fevers", "in_isolation", ...CASE_CLASSES.map((c) => c[0])];
    const [ears, ...lists] = await Promise.all([loadEarsAlerts(),
      ...metrics.map((m) => seriesOf(S.unit, m, CHART_DAYS))]);
    if (!current(generation)) return;
    metrics.forEach((m, i) => { S.series[m] = lists[i]; });
    S.earsAlerts = ears;
    drawCharts();
  }

  async function loadEarsAlerts() {
    const states = "state=firing&state=acknowledged&state=resolved";
    try {
      const r = await api(`/v1/alerts?unit=${S.unit}&${states}&limit=500`);
      return r.alerts.filter((a) => a.unit === S.unit && /^ears_/.test(a.rule)
        && a.upper_bound !== null && a.upper_bound !== undefined);
    } catch (error) {
      return [];
    }
  }

  function earsSeries(metric) {
    const marks = S.earsAlerts.filter((a) => a.rule.endsWith(`_${metric}`));
    const best = {};
    marks.forEach((a) => { best[a.day] = Math.min(best[a.day] ?? Infinity, a.upper_bound); });
    return {
      name: t("earsBound"), type: "scatter", symbol: "rect", symbolSize: [22, 3],
      itemStyle: { color: "#ff4d4f" }, z: 5,
      data: Object.entries(best).map(([day, bound]) => [day, Number(bound.toFixed(1))]),
    };
  }

  function baseOption(days) {
    return {
      backgroundColor: "transparent", animation: false,
      textStyle: { color: "#dce7f3" },
      grid: { left: 40, right: 16, top: 30, bottom: 28 },
      tooltip: { trigger: "axis" },
      legend: { top: 0, textStyle: { color: "#dce7f3" } },
      xAxis: { type: "category", data: days, axisLabel: { color: "#8aa3bd" } },
      yAxis: { type: "value", minInterval: 1, axisLabel: { color: "#8aa3bd" },
        splitLine: { lineStyle: { color: "#23405f" } } },
    };
  }

  function chart(id) {
    if (!window.echarts) return null;
    if (!S.charts[id]) S.charts[id] = window.echarts.init($(id), null, { renderer: "canvas" });
    return S.charts[id];
  }

  function drawCharts() {
    const days = (S.series.fevers || []).map((p) => p.date);
    const values = (m) => (S.series[m] || []).map((p) => p.value);
    const fevers = chart("chart-fevers");
    if (!fevers) return;
    fevers.setOption({ ...baseOption(days), series: [
      { name: t("fevers"), type: "line", data: values("fevers"), smooth: true,
        itemStyle: { color: "#3fa7ff" }, areaStyle: { opacity: 0.15 } },
      earsSeries("fevers"),
    ] }, true);
    chart("chart-cases").setOption({ ...baseOption(days), series: [
      ...CASE_CLASSES.map(([m, key, color]) => ({ name: t(key), type: "bar", stack: "cases",
        data: values(m), itemStyle: { color } })),
      earsSeries("suspected"),
    ] }, true);
    chart("chart-isolation").setOption({ ...baseOption(days), series: [
      { name: t("inIsolation"), type: "line", step: "end", data: values("in_isolation"),
        itemStyle: { color: "#2e9d5b" }, areaStyle: { opacity: 0.15 } },
    ] }, true);
  }

  function updateChartsToday(figures) {
    Object.keys(S.series).forEach((m) => {
      const points = S.series[m];
      const last = points[points.length - 1];
      if (last && last.date === S.day && figures[m] !== undefined) last.value = figures[m];
    });
    drawCharts();
  }

  /* ---------- alerts ---------- */

  function canOperate() {
    return S.me && S.me.role === "operate";
  }

  async function loadAlerts(generation) {
    const wanted = generation === undefined ? S.generation : generation;
    let alerts = [];
    let text = "";
    try {
      alerts = (await api(`/v1/alerts?unit=${S.unit}&state=firing&state=acknowledged`)).alerts;
      text = alerts.length ? (canOperate() ? "" : t("readOnly")) : t("noAlerts");
    } catch (error) {
      text = t("alertsUnavailable");
    }
    if (!current(wanted)) return;
    S.alerts = alerts;
    /* an alert carries its unit's path: name units the drill-down has not loaded yet */
    alerts.forEach((a) => (a.path || []).forEach((u) => { if (!S.names[u.code]) S.names[u.code] = u; }));
    const note = $("alerts-note");
    note.replaceChildren(...(text ? [text, el("br")] : []), el("small", {}, t("earsNote")));
    renderAlerts();
  }

  function alertItem(a) {
    const summary = S.lang === "en" ? a.summary_en : a.summary_zh;
    const actions = el("div", { class: "alert-actions" });
    if (canOperate() && a.state === "firing") {
      actions.append(el("button", { type: "button", "data-action": "ack",
        onclick: () => act(a.id, "ack") }, t("ack")));
    }
    if (canOperate() && a.state !== "resolved") {
      actions.append(el("button", { type: "button", "data-action": "resolve",
        onclick: () => act(a.id, "resolve") }, t("resolve")));
    }
    const open = S.openTimelines.has(a.id);
    actions.append(el("button", { type: "button", "data-action": "timeline",
      onclick: () => toggleTimeline(a.id) }, open ? t("hide") : t("timeline")));
    const item = el("li", { id: `alert-${a.id}`, "data-state": a.state },
      el("div", { class: "alert-head" }, badge(`sev-${a.severity}`, t(a.severity)),
        el("strong", { class: `state state-${a.state}` }, t(a.state)),
        el("span", {}, summary)),
      el("div", { class: "alert-meta" },
        `${unitName(a.unit)} (${a.unit}) · ${localTime(a.fired_at)} · ${a.occurrences}${t("occurrences")}`),
      actions, el("ul", { class: "timeline" }));
    if (open) loadTimeline(a.id, item.querySelector(".timeline"));
    return item;
  }

  function renderAlerts() {
    $("alert-list").replaceChildren(...S.alerts.map(alertItem));
  }

  async function act(id, action) {
    try {
      await api(`/v1/alerts/${id}/${action}`, { method: "POST" });
    } catch (error) {
      $("alerts-note").textContent = `${t("actionFailed")}: ${error.message}`;
    }
    S.openTimelines.add(id);
    await loadAlerts();
    markUpdated();
  }

  function toggleTimeline(id) {
    if (S.openTimelines.has(id)) S.openTimelines.delete(id); else S.openTimelines.add(id);
    renderAlerts();
  }

  async function loadTimeline(id, list) {
    try {
      const detail = await api(`/v1/alerts/${id}`);
      list.replaceChildren(...detail.timeline.map((e) => el("li", {},
        `${localTime(e.at)} · ${t(e.action)}${e.actor ? ` · ${e.actor}` : ""}`)));
    } catch (error) {
      list.replaceChildren(el("li", { class: "error" }, error.message));
    }
  }

  /* ---------- tasks pushed down to communities ---------- */

  const TASK_FIGURES = [
    ["tasks_open", "tasksOpen"], ["tasks_overdue", "tasksOverdue"], ["tasks_done", "tasksDone"],
    ["tasks_unreachable", "tasksUnreachable"], ["median_hours_to_done", "medianHoursToDone"],
  ];

  function renderTasks() {
    const f = S.figures;
    $("task-kpis").replaceChildren(...TASK_FIGURES.map(([metric, key]) => el("div", {
      class: `kpi${metric === "tasks_overdue" && f[metric] > 0 ? " warn" : ""}`,
      "data-task-figure": metric,
    }, el("div", { class: "label" }, t(key)), el("div", { class: "value" }, fmt(f[metric])))));
  }

  /* Overdue tasks per street: ids, communities, kinds and due times (no personal data). */
  async function loadOverdue(generation) {
    const wanted = generation === undefined ? S.generation : generation;
    let found;
    try {
      found = await api(`/v1/units/${S.unit}/tasks/overdue?date=${S.day}`);
    } catch (error) {
      return;
    }
    if (!current(wanted)) return;
    found.streets.forEach((s) => {
      remember({ code: s.code, name: s.name, name_en: s.name_en });
      s.tasks.forEach((task) => {
        if (!S.names[task.community]) {
          remember({ code: task.community, name: task.community_name, name_en: "" });
        }
      });
    });
    $("no-overdue").hidden = found.streets.length > 0;
    $("overdue-streets").replaceChildren(...found.streets.map(streetOverdue));
  }

  function streetOverdue(street) {
    const rows = street.tasks.map((task) => el("tr", { "data-task": task.task },
      el("td", { class: "task-id" }, task.task),
      el("td", { "data-community": task.community }, unitName(task.community)),
      el("td", { "data-kind": task.kind }, t(task.kind)),
      el("td", {}, localTime(task.due))));
    const more = street.overdue - street.tasks.length;
    return el("section", { class: "street-overdue", "data-street": street.code },
      el("h4", {}, `${unitName(street.code)} · `,
        el("span", { class: "count" }, String(street.overdue))),
      el("table", {}, el("thead", {}, el("tr", {}, ...["task", "community", "kind", "due"].map(
        (key) => el("th", {}, t(key))))), el("tbody", {}, ...rows)),
      more > 0 ? el("p", { class: "muted" }, `${t("more")} ${more}`) : "");
  }

  /* ---------- data quality: the children ranked by their scorecard, worst first ---------- */

  const QUALITY_DAYS = 7;
  const QUALITY_FIGURES = [
    ["score", (v) => fmt(v)], ["on_time_rate", percent], ["closes_late", fmt],
    ["closes_missing", fmt], ["days_since_last_event", (v) => (v === "never" ? t("never") : fmt(v))],
    ["late_share", percent], ["case_in_limit_share", percent], ["case_lag_median_h", fmt],
    ["zero_contradicted", fmt], ["counts_differing", fmt],
  ];

  function percent(value) {
    return value === null || value === undefined ? t("noneYet") : `${Math.round(value * 100)}%`;
  }

  /* Worst first; a unit without a score (nothing was due) goes last. */
  function byScore(a, b) {
    const x = a.quality.score, y = b.quality.score;
    if (x === null && y === null) return a.code.localeCompare(b.code);
    if (x === null) return 1;
    if (y === null) return -1;
    return x - y || a.code.localeCompare(b.code);
  }

  async function loadQuality(generation) {
    const wanted = generation === undefined ? S.generation : generation;
    const first = addDays(S.day, -(QUALITY_DAYS - 1));
    let card;
    try {
      card = await api(`/v1/units/${S.unit}/quality?from=${first}&to=${S.day}`);
    } catch (error) {
      card = null;
    }
    if (!current(wanted)) return;
    const panel = $("quality-panel");
    panel.hidden = !card || card.children.length === 0;
    if (panel.hidden) return;
    $("quality-period").textContent = `${card.from} – ${card.to}`;
    const rows = card.children.slice().sort(byScore).map((c) => el("tr", {
      "data-code": c.code, class: c.quality.score !== null && c.quality.score < 60 ? "poor" : "",
      onclick: () => navigate(c.code),
    }, el("td", {}, unitName(c.code)), QUALITY_FIGURES.map(([key, show]) => el("td", {
      class: "num", "data-figure": key,
    }, show(c.quality[key])))));
    document.querySelector("#quality tbody").replaceChildren(...rows);
  }

  /* ---------- live updates (server-sent events) ---------- */

  function connectLive() {
    if (S.source) S.source.close();
    const q = `unit=${S.unit}&access_token=${encodeURIComponent(S.token)}`;
    const source = new EventSource(`/v1/live?${q}`);
    S.source = source;
    source.addEventListener("hello", (e) => setLive(JSON.parse(e.data).live));
    source.addEventListener("heartbeat", (e) => setLive(JSON.parse(e.data).live));
    source.addEventListener("rollup", (e) => applyRollup(JSON.parse(e.data)));
    source.addEventListener("alert", () => later("alerts", loadAlerts, 300));
    source.addEventListener("resync", () => later("reload", loadAll, 500));
    source.addEventListener("error", () => setLive(false));
  }

  function later(name, fn, ms) {
    clearTimeout(S.timers[name]);
    S.timers[name] = setTimeout(fn, ms);
  }

  function applyRollup(message) {
    const received = performance.now();
    setLive(true);
    if (message.date !== S.day) return;
    refreshOverview(received); /* its request first: the redraws below overlap with it */
    if (message.unit === S.unit) {
      S.figures = message.figures;
      renderKpis();
      renderTasks();
      renderNeeds();
      later("overdue", loadOverdue, 300);
      updateChartsToday(message.figures);
      later("points", () => loadPoints(S.generation), 500);
    } else {
      const child = S.children.find((c) => c.code === message.unit);
      if (child) child.figures = message.figures;
      updateRow(message.unit, message.figures);
    }
    later("quality", () => loadQuality(S.generation), 2000);
    markUpdated();
  }

  /* ---------- wiring ---------- */

  function boot() {
    applyTexts();
    $("lang").addEventListener("click", () => {
      S.lang = S.lang === "zh" ? "en" : "zh";
      localStorage.setItem(LANG_KEY, S.lang);
      applyTexts();
      if (S.me) loadAll();
    });
    $("token-button").addEventListener("click", () => showLogin(""));
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      S.token = $("token-input").value.trim();
      localStorage.setItem(TOKEN_KEY, S.token);
      $("token-input").value = "";
      start();
    });
    $("colour-by").addEventListener("change", () => {
      S.colourBy = $("colour-by").value;
      if (S.me) drawOverview();
    });
    $("day").addEventListener("change", () => { S.day = $("day").value; if (S.me) loadAll(); });
    window.addEventListener("resize", () => Object.values(S.charts).forEach((c) => c.resize()));
    if (S.token) start(); else showLogin("");
  }

  document.addEventListener("DOMContentLoaded", boot);
})();
