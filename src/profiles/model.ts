/** Helpers the profiles share: profiles are frozen, so spreading one never shares a mutable part. */
import type { TuningModel } from "../resources/networkTuning";

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const key of Object.keys(value)) {
      const d = Object.getOwnPropertyDescriptor(value, key);
      if (d && "value" in d) deepFreeze(d.value);
    }
    Object.freeze(value);
  }
  return value;
}

/** A profile as exported: deeply frozen. */
export function profile(model: TuningModel): TuningModel {
  return deepFreeze(model);
}

/**
 * A profile whose `field` is made on first read (and kept): for a part that needs a file shipped
 * with the package (an XDP object), so that loading nettune never fails for want of it; only
 * using the profile does, saying which file is missing.
 */
export function profileWithLazy<K extends keyof TuningModel>(
  model: Omit<TuningModel, K>,
  field: K,
  make: () => NonNullable<TuningModel[K]>,
): TuningModel {
  let made: NonNullable<TuningModel[K]> | undefined;
  const out = { ...model };
  Object.defineProperty(out, field, {
    enumerable: true,
    get: () => (made ??= deepFreeze(make())),
  });
  return deepFreeze(out as TuningModel);
}
