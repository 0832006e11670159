/**
 * The remediator.dev/v1alpha1 API: schemas, derived types, CRDs, the duration grammar and
 * the reason catalogue.
 */
export * from './duration.js';
export * from './schema.js';
export * from './runbook.js';
export * from './alertpolicy.js';
export * from './remediationrequest.js';
export * from './crds.js';
export * from './reasons.js';
