/**
 * A fact per index slot about its current value, in a Float64Array made only when the first fact
 * is noted, so an index that never notes one pays nothing for it.
 *
 * @module
 */

/** `column` with `count` entries, new ones `fill` (undefined stays undefined). */
function resizedColumn(
  column: Float64Array | undefined,
  count: number,
  fill: number,
): Float64Array | undefined {
  if (column === undefined || column.length === count) return column;
  const resized = new Float64Array(count);
  if (column.length > count) {
    resized.set(column.subarray(0, count));
  } else {
    resized.set(column);
    if (fill !== 0) resized.fill(fill, column.length);
  }
  return resized;
}

/**
 * One fact per slot about its current value, in a Float64Array created with the first fact
 * (NaN: none known): the key index keeps a counter's integer in one (`KeyIndex.setCounter`).
 */
export class FactColumn {
  #values: Float64Array | undefined;

  get(slot: number): number {
    const values = this.#values;
    return values === undefined ? Number.NaN : values[slot];
  }

  /** Notes `value` for `slot`; `slots` is the column's length if it must be made now. */
  set(slot: number, value: number, slots: number): void {
    this.#values ??= new Float64Array(slots).fill(Number.NaN);
    this.#values[slot] = value;
  }

  forget(slot: number): void {
    const values = this.#values;
    if (values !== undefined) values[slot] = Number.NaN;
  }

  /** Keeps the column as long as the slots, `count` of them. */
  resize(count: number): void {
    this.#values = resizedColumn(this.#values, count, Number.NaN);
  }
}
