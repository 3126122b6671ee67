/**
 * Who hears of the keys writes change ({@link KVStore.onKeyChange}, Redis's `WATCH`): the
 * listeners composed into one function, so that a write pays one check when nobody listens and
 * one call when one does.
 *
 * @module
 */

/** Hears of a key a write changed, or of every key (`undefined`): `KVStore.onKeyChange`. */
export type KeyChangeListener = (key: string | undefined) => void;

/** One function that calls every listener of `listeners`, or undefined when there is none. */
export function composeKeyListeners(
  listeners: Iterable<KeyChangeListener>,
): KeyChangeListener | undefined {
  const all = [...listeners];
  return all.length === 0 ? undefined : all.length === 1 ? all[0] : (key) => {
    for (const listener of all) listener(key);
  };
}
