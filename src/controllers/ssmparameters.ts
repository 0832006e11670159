/** Renders an SSM action's parameters for one request, applying each parameter's allowlist. */
import { DEFAULT_ALLOWED_PATTERN, DEFAULT_MAX_VALUE_LENGTH, type SsmAction } from '../api/v1alpha1/index.js';
import { render, type TemplateContext } from './template.js';

export function renderSsmParameters(action: SsmAction, ctx: TemplateContext): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const p of action.parameters) {
    const policy = { allowedPattern: p.allowedPattern ?? DEFAULT_ALLOWED_PATTERN, maxLength: p.maxLength ?? DEFAULT_MAX_VALUE_LENGTH };
    out[p.name] = p.values.map((v) => render(v, ctx, policy));
  }
  return out;
}
