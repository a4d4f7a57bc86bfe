// Charts as inline SVG built node by node: no library, and no markup parsed
// from data. Colours come from wallboard.css classes, since the page's CSP
// refuses style attributes.

const NS = "http://www.w3.org/2000/svg";

/** An SVG element: s("rect", {x: 1, class: "bar"}, child...). Text children become text nodes. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function frame(width, height, label) {
  return s(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": label },
    s("title", {}, label),
  );
}

/** A rounded-up axis maximum: 2, 4, 10, 20, 40, 100... at least `value`; even, so half of it is whole. */
function niceMax(value) {
  if (value <= 2) return 2;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 4, 10]) if (m * step >= value && (m * step) % 2 === 0) return m * step;
  return 10 * step;
}

/**
 * Bars (counts, left axis) with a line (a fraction 0..1, right axis) over the
 * same slots: contacts offered and service level per interval or per day.
 *
 * @param {{label: string, bar: number, line: number|null}[]} points
 * @param {{label: string, barName: string, lineName: string, tick: (i: number) => boolean,
 *          percent: (x: number) => string}} options
 */
export function barLineChart(points, options) {
  const width = 640;
  const height = 240;
  const left = 40;
  const right = 48;
  const top = 16;
  const bottom = 42;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const svg = frame(width, height, options.label);
  const max = niceMax(Math.max(0, ...points.map((p) => p.bar)));
  const slot = plotW / Math.max(points.length, 1);
  const y = (v) => top + plotH - (v / max) * plotH;
  const yLine = (f) => top + plotH - f * plotH;

  for (const f of [0, 0.5, 1]) {
    svg.append(
      s("line", { x1: left, x2: left + plotW, y1: yLine(f), y2: yLine(f), class: "grid" }),
      s("text", { x: left - 6, y: yLine(f) + 4, class: "axis", "text-anchor": "end" }, Math.round(max * f)),
      s(
        "text",
        { x: left + plotW + 6, y: yLine(f) + 4, class: "axis line-axis" },
        options.percent(f),
      ),
    );
  }
  points.forEach((p, i) => {
    const x = left + i * slot;
    if (p.bar > 0) {
      const barW = Math.max(1, slot * 0.7);
      svg.append(
        s(
          "rect",
          {
            x: x + (slot - barW) / 2,
            y: y(p.bar),
            width: barW,
            height: top + plotH - y(p.bar),
            class: "bar",
          },
          s("title", {}, `${p.label}: ${p.bar}`),
        ),
      );
    }
    if (options.tick(i)) {
      svg.append(
        s("line", { x1: x, x2: x, y1: top + plotH, y2: top + plotH + 4, class: "grid" }),
        s("text", { x, y: top + plotH + 16, class: "axis", "text-anchor": "middle" }, p.label),
      );
    }
  });
  // The line breaks where an interval answered nothing: no service level there.
  let path = "";
  let pen = false;
  points.forEach((p, i) => {
    if (p.line == null) {
      pen = false;
      return;
    }
    const x = left + i * slot + slot / 2;
    path += `${pen ? "L" : "M"}${x.toFixed(1)},${yLine(p.line).toFixed(1)}`;
    pen = true;
    svg.append(
      s(
        "circle",
        { cx: x, cy: yLine(p.line), r: 2.5, class: "dot" },
        s("title", {}, `${p.label}: ${options.percent(p.line)}`),
      ),
    );
  });
  if (path) svg.append(s("path", { d: path, class: "line" }));
  svg.append(legend(left, height - 10, [
    ["bar", options.barName],
    ["line-key", options.lineName],
  ]));
  return svg;
}

/**
 * Two bars per group, side by side: agents needed and agents staffed per queue.
 *
 * @param {{label: string, a: number|null, b: number}[]} groups
 * @param {{label: string, aName: string, bName: string, unknown: string}} options
 */
export function pairedBars(groups, options) {
  const width = 640;
  const rowH = 34;
  const top = 8;
  const left = 140;
  const right = 40;
  const height = top + Math.max(groups.length, 1) * rowH + 30;
  const plotW = width - left - right;
  const svg = frame(width, height, options.label);
  const max = niceMax(Math.max(1, ...groups.map((g) => Math.max(g.a ?? 0, g.b))));
  const x = (v) => left + (v / max) * plotW;
  groups.forEach((g, i) => {
    const y0 = top + i * rowH;
    svg.append(
      s("text", { x: left - 8, y: y0 + rowH / 2 + 4, class: "axis name", "text-anchor": "end" }, g.label),
    );
    const rows = [
      [g.a, "needed", options.aName],
      [g.b, "staffed", options.bName],
    ];
    rows.forEach(([value, kind, name], j) => {
      const y = y0 + 4 + j * 13;
      if (value == null) {
        svg.append(s("text", { x: left + 4, y: y + 10, class: "axis" }, `${name}: ${options.unknown}`));
        return;
      }
      svg.append(
        s(
          "rect",
          { x: left, y, width: Math.max(1, x(value) - left), height: 11, class: `pair ${kind}` },
          s("title", {}, `${name}: ${value}`),
        ),
        s("text", { x: x(value) + 4, y: y + 10, class: "axis" }, value),
      );
    });
  });
  svg.append(legend(left, height - 8, [
    ["pair needed", options.aName],
    ["pair staffed", options.bName],
  ]));
  return svg;
}

function legend(x, y, entries) {
  const g = s("g", { class: "legend" });
  let at = x;
  for (const [kind, name] of entries) {
    g.append(
      s("rect", { x: at, y: y - 9, width: 12, height: 10, class: kind }),
      s("text", { x: at + 16, y, class: "axis" }, name),
    );
    at += 32 + textWidth(name);
  }
  return g;
}

/** Rough width of a label at the axis font size; CJK characters are about twice as wide. */
function textWidth(text) {
  let width = 0;
  for (const ch of text) width += ch.codePointAt(0) > 0x2e80 ? 12 : 6.5;
  return width;
}
