/**
 * Who hears of the keys writes change ({@link KVStore.onKeyChange}, Redis's `WATCH`): the
 * listeners composed into one function, so that a write pays one check when nobody listens and
 * one call when one does.
 *
 * @module
 */

/**
 * Hears of a key a write changed, or (`key` undefined) of the whole contents replaced (a FLUSH, a
 * full sync): then `touched` says whether a given key was there before or is there after (a key
 * in neither did not change, as Redis 7 judges `WATCH` on a flush). `KVStore.onKeyChange`.
 */
export type KeyChangeListener = (
  key: string | undefined,
  touched?: (key: string) => boolean,
) => void;

/** One function that calls every listener of `listeners`, or undefined when there is none. */
export function composeKeyListeners(
  listeners: Iterable<KeyChangeListener>,
): KeyChangeListener | undefined {
  const all = [...listeners];
  return all.length === 0 ? undefined : all.length === 1 ? all[0] : (key, touched) => {
    for (const listener of all) listener(key, touched);
  };
}
