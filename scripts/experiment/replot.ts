/**
 * `deno run -A scripts/experiment/replot.ts [DIR]`: re-draws the accuracy-vs-flops and label-free
 * plots under DIR (default `results`) from their CSV files with the current `flopsChart`, without
 * recomputing a cell (used when the plot layout changed: the fourteenth session's legend box).
 * @module
 */
import { flopsChart, type FlopsCurve } from "../experiment.ts";
import { meanStd } from "./common.ts";
const dir = Deno.args[0] ?? "results";
for (const name of ["accuracy-vs-flops", "label-free"]) {
  const labelFree = name === "label-free";
  const lines = Deno.readTextFileSync(`${dir}/${name}/${name}.csv`).trim().split("\n").slice(1);
  const byTask = new Map<
    string,
    Map<string, { lf: Map<number, number[]>; lab: Map<number, number[]> }>
  >();
  for (const l of lines) {
    const [task, arch, model, imp, c, , , metric] = l.split(",");
    const t = byTask.get(task) ?? new Map();
    byTask.set(task, t);
    const key = `${arch} (${model})`;
    const e = t.get(key) ?? { lf: new Map(), lab: new Map() };
    t.set(key, e);
    const m = labelFree && imp === "labelled" ? e.lab : e.lf;
    const arr = m.get(Number(c)) ?? [];
    arr.push(Number(metric));
    m.set(Number(c), arr);
  }
  for (const [task, t] of byTask) {
    const list: FlopsCurve[] = [];
    for (const [arch, e] of t) {
      const stat = meanStd;
      const points = [...e.lf].map(([c, v]) => ({ c, ...stat(v) }));
      list.push({
        arch,
        points,
        base: stat(e.lf.get(1)!).mean,
        labelled: labelFree ? [...e.lab].map(([c, v]) => ({ c, mean: stat(v).mean })) : undefined,
      });
    }
    Deno.writeTextFileSync(`${dir}/${name}/${task}.svg`, flopsChart(task, list, labelFree));
    console.log(`${dir}/${name}/${task}.svg`);
  }
}
