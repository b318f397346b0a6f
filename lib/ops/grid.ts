/**
 * Grid helpers shared by the ops: split a 1-D element count into a 2-D workgroup grid that
 * respects the 65535-per-dimension limit.
 * @module
 */

/** Workgroup grid covering `n` items with `wg` items per workgroup; returns [nx, ny]. */
export function grid1d(n: number, wg: number): [number, number] {
  const groups = Math.ceil(n / wg);
  if (groups <= 65535) return [groups, 1];
  const ny = Math.ceil(groups / 65535);
  return [Math.ceil(groups / ny), ny];
}
