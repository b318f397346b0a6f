/**
 * Small dependency-free SVG charts for reports and experiments: grouped bar charts (kept heads and
 * neurons per layer) and line charts with error bars and a baseline (accuracy vs FLOPs). Axes,
 * ticks, units and legends are always drawn.
 * @module
 */

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) {
    ticks.push(+v.toFixed(10));
  }
  return ticks;
}

function fmt(v: number): string {
  return Math.abs(v) >= 1000 ? v.toFixed(0) : +v.toPrecision(4) + "";
}

/** A series of a line chart: points (x, y, optional ± error). */
export interface LineSeries {
  /** Legend label. */
  label: string;
  /** Points sorted by x. */
  points: { x: number; y: number; err?: number }[];
  /** Dashed line. */
  dashed?: boolean;
}

/** Options of `lineChart`. */
export interface LineChartOptions {
  /** Title at the top. */
  title: string;
  /** x-axis label (with unit). */
  xLabel: string;
  /** y-axis label (with unit). */
  yLabel: string;
  /** Horizontal reference lines (e.g. the unpruned baseline). */
  baselines?: { label: string; y: number }[];
  /** Width (default 640). */
  width?: number;
  /** Height (default 420). */
  height?: number;
  /** Legend corner inside the plot (default "top-left"). */
  legend?: "top-left" | "bottom-right";
}

/** A line chart with optional error bars and horizontal baselines. */
export function lineChart(series: LineSeries[], o: LineChartOptions): string {
  const W = o.width ?? 640, Hh = o.height ?? 420;
  const m = { l: 70, r: 20, t: 40, b: 60 };
  const pts = series.flatMap((s) => s.points);
  const xs = pts.map((p) => p.x);
  const ys = [
    ...pts.flatMap((p) => [p.y - (p.err ?? 0), p.y + (p.err ?? 0)]),
    ...(o.baselines ?? []).map((b) => b.y),
  ];
  const xlo = Math.min(...xs), xhi = Math.max(...xs);
  let ylo = Math.min(...ys), yhi = Math.max(...ys);
  const pad = (yhi - ylo) * 0.08 || 1;
  ylo -= pad;
  yhi += pad;
  const X = (x: number) => m.l + ((x - xlo) / (xhi - xlo || 1)) * (W - m.l - m.r);
  const Y = (y: number) => Hh - m.b - ((y - ylo) / (yhi - ylo || 1)) * (Hh - m.t - m.b);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" viewBox="0 0 ${W} ${Hh}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`);
  for (const t of niceTicks(ylo, yhi)) {
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(t)}" y2="${Y(t)}" stroke="#eee"/>`);
    out.push(`<text x="${m.l - 6}" y="${Y(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  for (const t of niceTicks(xlo, xhi)) {
    out.push(
      `<line x1="${X(t)}" x2="${X(t)}" y1="${Hh - m.b}" y2="${Hh - m.b + 5}" stroke="black"/>`,
    );
    out.push(`<text x="${X(t)}" y="${Hh - m.b + 18}" text-anchor="middle">${fmt(t)}</text>`);
  }
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Hh - m.b}" y2="${Hh - m.b}" stroke="black"/>`);
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${Hh - m.b}" stroke="black"/>`);
  out.push(
    `<text x="${(m.l + W - m.r) / 2}" y="${Hh - 18}" text-anchor="middle">${esc(o.xLabel)}</text>`,
  );
  out.push(
    `<text transform="translate(18 ${(m.t + Hh - m.b) / 2}) rotate(-90)" text-anchor="middle">${
      esc(o.yLabel)
    }</text>`,
  );
  (o.baselines ?? []).forEach((b) => {
    out.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${Y(b.y)}" y2="${
        Y(b.y)
      }" stroke="#555" stroke-dasharray="6 4"/>`,
    );
  });
  series.forEach((s, i) => {
    const col = COLORS[i % COLORS.length];
    const d = s.points.map((p, k) => `${k ? "L" : "M"}${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`)
      .join("");
    out.push(
      `<path d="${d}" fill="none" stroke="${col}" stroke-width="2"${
        s.dashed ? ' stroke-dasharray="5 3"' : ""
      }/>`,
    );
    for (const p of s.points) {
      if (p.err) {
        out.push(
          `<line x1="${X(p.x)}" x2="${X(p.x)}" y1="${Y(p.y - p.err)}" y2="${
            Y(p.y + p.err)
          }" stroke="${col}"/>`,
        );
      }
      out.push(`<circle cx="${X(p.x)}" cy="${Y(p.y)}" r="3" fill="${col}"/>`);
    }
  });
  // the legend on a white box sized to its longest label (≈ 0.6 em per character at 12 px), kept
  // inside the plot area, after the curves so that none runs through its text
  const bottom = o.legend === "bottom-right";
  const legendW = 30 + Math.max(0, ...series.map((s) => s.label.length)) * 7.2 + 8;
  const lx = bottom ? Math.max(m.l + 4, W - m.r - legendW) : m.l + 12;
  const ly0 = bottom ? Hh - m.b - 12 - (series.length - 1) * 18 : m.t + 8;
  if (series.length > 0) {
    out.push(
      `<rect x="${lx - 6}" y="${ly0 - 12}" width="${legendW.toFixed(0)}" height="${
        series.length * 18 + 6
      }" fill="#fff" fill-opacity="0.85"/>`,
    );
  }
  series.forEach((s, i) => {
    const col = COLORS[i % COLORS.length];
    const ly = ly0 + i * 18;
    const dash = s.dashed ? ' stroke-dasharray="5 3"' : "";
    out.push(
      `<line x1="${lx}" x2="${
        lx + 24
      }" y1="${ly}" y2="${ly}" stroke="${col}" stroke-width="2"${dash}/>`,
    );
    out.push(`<text x="${lx + 30}" y="${ly + 4}">${esc(s.label)}</text>`);
  });
  // baseline labels last, with a white halo: readable where a curve crosses them
  for (const b of o.baselines ?? []) {
    out.push(
      `<text x="${W - m.r - 4}" y="${Y(b.y) - 4}" text-anchor="end" fill="#555" stroke="#fff" ` +
        `stroke-width="3" paint-order="stroke">${esc(b.label)}</text>`,
    );
  }
  out.push("</svg>");
  return out.join("\n");
}

/** Options of `barChart`. */
export interface BarChartOptions {
  /** Title. */
  title: string;
  /** Category axis label. */
  xLabel: string;
  /** Value axis label. */
  yLabel: string;
  /** Maximum of the value axis (e.g. the unpruned count); drawn as a dashed line. */
  max?: number;
  /** Width (default 640). */
  width?: number;
  /** Height (default 300). */
  height?: number;
}

/** A grouped bar chart: one group per category, one bar per series. */
export function barChart(
  categories: string[],
  series: { label: string; values: number[] }[],
  o: BarChartOptions,
): string {
  const W = o.width ?? 640, Hh = o.height ?? 300;
  const m = { l: 60, r: 20, t: 40, b: 50 };
  const vmax = Math.max(o.max ?? 0, ...series.flatMap((s) => s.values), 1);
  const Y = (v: number) => Hh - m.b - (v / vmax) * (Hh - m.t - m.b);
  const gw = (W - m.l - m.r) / categories.length;
  const bw = (gw * 0.8) / series.length;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" viewBox="0 0 ${W} ${Hh}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`);
  for (const t of niceTicks(0, vmax)) {
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(t)}" y2="${Y(t)}" stroke="#eee"/>`);
    out.push(`<text x="${m.l - 6}" y="${Y(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  if (o.max) {
    out.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${Y(o.max)}" y2="${
        Y(o.max)
      }" stroke="#555" stroke-dasharray="6 4"/>`,
    );
  }
  categories.forEach((c, i) => {
    series.forEach((s, k) => {
      const x = m.l + i * gw + gw * 0.1 + k * bw;
      const v = s.values[i];
      out.push(
        `<rect x="${x.toFixed(1)}" y="${Y(v).toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${
          (Y(0) - Y(v)).toFixed(1)
        }" fill="${COLORS[k % COLORS.length]}"><title>${
          esc(`${s.label} ${c}: ${v}`)
        }</title></rect>`,
      );
    });
    out.push(
      `<text x="${m.l + i * gw + gw / 2}" y="${Hh - m.b + 16}" text-anchor="middle">${
        esc(c)
      }</text>`,
    );
  });
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Hh - m.b}" y2="${Hh - m.b}" stroke="black"/>`);
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${Hh - m.b}" stroke="black"/>`);
  out.push(
    `<text x="${(m.l + W - m.r) / 2}" y="${Hh - 12}" text-anchor="middle">${esc(o.xLabel)}</text>`,
  );
  out.push(
    `<text transform="translate(16 ${(m.t + Hh - m.b) / 2}) rotate(-90)" text-anchor="middle">${
      esc(o.yLabel)
    }</text>`,
  );
  series.forEach((s, k) => {
    const lx = W - m.r - 150, ly = m.t + 4 + k * 16;
    out.push(
      `<rect x="${lx}" y="${ly - 9}" width="12" height="12" fill="${COLORS[k % COLORS.length]}"/>`,
    );
    out.push(`<text x="${lx + 18}" y="${ly + 1}">${esc(s.label)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n");
}
