/* The overview (全域总览): every unit under the shown one as an ECharts treemap, sized by
 * population and coloured by risk or declared response level. Drawn from one answer of
 * /v1/units/{code}/overview; no map data, nothing from outside this origin.
 * Used by app.js through window.ZBOverview. */
"use strict";

window.ZBOverview = (function () {
  const RISK = { low: "#2e9d5b", medium: "#e6a23c", high: "#e0463a" };
  const LEVEL = { red: "#c62828", orange: "#ef6c00", yellow: "#f9a825", blue: "#1565c0",
    none: "#3d4c5e" };
  const UNKNOWN = "#3d4c5e";
  /* Figures shown in a unit's tooltip, when the rollup has them. */
  const TIP_FIGURES = [
    ["screenings", "screenings"], ["fevers", "fevers"], ["new_confirmed", "newConfirmed"],
    ["current_confirmed", "currentConfirmed"], ["in_isolation", "inIsolation"],
    ["reports_overdue", "reportsMissing"], ["tasks_overdue", "tasksOverdue"],
    ["needs_open", "needsOpen"], ["needs_overdue", "needsOverdue"],
  ];

  /** The colour of a unit: its risk level, or its declared response level. */
  function colourOf(unit, by) {
    const f = unit.figures || {};
    if (by === "level") return LEVEL[f.declared_level || "none"] || UNKNOWN;
    return RISK[f.risk_level] || UNKNOWN;
  }

  /** A leaf's area: its population (households, or 1, where the registry has none). */
  function sizeOf(unit) {
    return unit.population || unit.households || 1;
  }

  /** The treemap's nodes under ``top`` (a unit code), built in one pass over the list. */
  function nodes(units, top, by, name) {
    const below = {};
    units.forEach((u) => { if (u.parent) (below[u.parent] = below[u.parent] || []).push(u); });
    function node(u) {
      const kids = below[u.code] || [];
      const colour = colourOf(u, by);
      const out = { name: name(u), code: u.code, unit: u, itemStyle: { color: colour } };
      if (kids.length) {
        out.children = kids.map(node);
        out.itemStyle.borderColor = colour;
      } else {
        out.value = sizeOf(u);
      }
      return out;
    }
    const own = units.find((u) => u.code === top);
    if (!below[top]) return own ? [node(own)] : []; /* a community: itself, one tile */
    return below[top].map(node);
  }

  function tooltip(t, name) {
    return (info) => {
      const u = info.data && info.data.unit;
      if (!u) return "";
      const f = u.figures || {};
      const lines = [`<b>${escape(name(u))}</b> (${u.code})`];
      if (u.population) lines.push(`${t("population")}: ${u.population.toLocaleString()}`);
      if (f.risk_level) lines.push(`${t("risk")}: ${t(f.risk_level)}`);
      lines.push(`${t("responseLevel")}: ${t(`level_${f.declared_level || "none"}`)}`);
      TIP_FIGURES.forEach(([key, text]) => {
        if (f[key] !== undefined && f[key] !== null) lines.push(`${t(text)}: ${f[key]}`);
      });
      return lines.join("<br>");
    };
  }

  function escape(text) {
    return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  /** The chart option: the shown unit's children, their children and so on, nested. */
  function option(units, top, by, t, name) {
    const upper = { show: true, height: 18, color: "#fff", fontSize: 12,
      overflow: "truncate", textShadowColor: "#000", textShadowBlur: 2 };
    return {
      animation: false,
      tooltip: { confine: true, formatter: tooltip(t, name) },
      series: [{
        type: "treemap", id: "overview", name: name(units.find((u) => u.code === top) || {}),
        data: nodes(units, top, by, name), roam: false, nodeClick: false,
        breadcrumb: { show: false }, left: 0, right: 0, top: 0, bottom: 0,
        label: { show: true, fontSize: 11, color: "#fff", overflow: "truncate",
          textShadowColor: "#000", textShadowBlur: 2 },
        upperLabel: upper,
        levels: [
          { itemStyle: { borderWidth: 3, borderColor: "#0b1a2e", gapWidth: 3 },
            upperLabel: { ...upper, fontSize: 13, fontWeight: "bold" } },
          { itemStyle: { borderWidth: 2, gapWidth: 1 } },
          { itemStyle: { borderWidth: 1, gapWidth: 1 } },
          { itemStyle: { borderWidth: 1, gapWidth: 0 } },
        ],
      }],
    };
  }

  return { RISK, LEVEL, colourOf, option };
})();
