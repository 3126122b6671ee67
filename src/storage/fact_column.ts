/**
 * A fact per index slot about its current value, in a Float64Array made only when the first fact
 * is noted, so an index that never notes one pays nothing for it.
 *
 * @module
 */

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

  /** Keeps the column as long as the slots, `count` of them (new ones know nothing). */
  resize(count: number): void {
    const values = this.#values;
    if (values === undefined || values.length === count) return;
    const resized = new Float64Array(count).fill(Number.NaN);
    resized.set(values.subarray(0, Math.min(count, values.length)));
    this.#values = resized;
  }
}
