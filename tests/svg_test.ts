/**
 * Tests of lib/report/svg.ts: what a reader needs is on the canvas — axes labels, baselines, and a
 * legend whose box lies inside the plot however long the model names are.
 * @module
 */
import { lineChart } from "../lib/report/svg.ts";
import { assert } from "./helpers.ts";

const attr = (tag: string, name: string) =>
  Number(new RegExp(`${name}="([-\\d.]+)"`).exec(tag)![1]);

Deno.test("lineChart: legend box inside the canvas for long labels, baselines and labels drawn", () => {
  const W = 640;
  const long = "distilbert (sst2-distilbert-nomlm) label-free";
  const series = [long, "bert (sst2-bert)", long + " again"].map((label, i) => ({
    label,
    dashed: i === 1,
    points: [10, 50, 100].map((x) => ({ x, y: 0.7 + 0.001 * x + 0.01 * i, err: 0.005 })),
  }));
  for (const legend of ["bottom-right", "top-left"] as const) {
    const svg = lineChart(series, {
      title: "t",
      xLabel: "FLOPs kept (%)",
      yLabel: "dev accuracy",
      baselines: [{ label: "unpruned bert", y: 0.75 }],
      legend,
      width: W,
    });
    const rect = svg.split("\n").find((l) => l.startsWith("<rect x="))!;
    const x = attr(rect, "x"), w = attr(rect, "width");
    assert(x >= 0 && x + w <= W, `${legend}: legend box ${x}…${x + w} outside 0…${W}`);
    // its width covers the longest label at ≥ 6.5 px per character of 12 px text
    assert(
      w >= 30 + (long.length + 6) * 6.5,
      `${legend}: legend box ${w} px for ${long.length + 6} chars`,
    );
    for (const text of ["FLOPs kept (%)", "dev accuracy", "unpruned bert", long]) {
      assert(svg.includes(text), `${legend}: ${text} missing`);
    }
  }
});
