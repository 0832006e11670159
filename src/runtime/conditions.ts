/**
 * Status condition helpers with metav1.Condition semantics: one entry per type, and
 * `lastTransitionTime` moves only when the status really changes.
 */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Returns a new list with `next` set; keeps the old transition time when the status is unchanged. */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  next: Omit<Condition, 'lastTransitionTime'>,
  now: string,
): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const old = i >= 0 ? list[i] : undefined;
  const cond: Condition = {
    ...next,
    message: next.message.slice(0, 32768),
    lastTransitionTime: old && old.status === next.status ? old.lastTransitionTime : now,
  };
  if (i >= 0) list[i] = cond;
  else list.push(cond);
  return list;
}
