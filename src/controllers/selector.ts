/**
 * `metav1.LabelSelector` matching, as the API server does it: every matchLabels entry and
 * every matchExpressions requirement must hold. Used for a Runbook's namespaceSelector
 * and to decide whether an admission binding covers a namespace. An absent selector
 * matches nothing (the safe reading for a grant); `{}` matches everything.
 */
import type { LabelSelector } from '../api/v1alpha1/index.js';

export function selectorMatches(selector: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(value ?? '')) return false;
        break;
      case 'NotIn':
        if (has && values.includes(value ?? '')) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** Whether a selector selects everything (`{}`, or no requirements at all). */
export function selectsEverything(selector: LabelSelector | undefined): boolean {
  return selector !== undefined && Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0;
}
