/**
 * Retention leaves requests a GitOps tool applied to Git (retention.ts): deleted, the
 * next sync would only create them again, and a health check would fail in between.
 */
import type { RemediationRequest } from '../api/v1alpha1/index.js';
import { leanRequest } from '../caches.js';
import { appliedFromGit, beyondHistoryLimit, DEFAULT_RETENTION, ttlLeftMs } from './retention.js';

const ended = (
  name: string,
  completionTime: string,
  meta: Partial<NonNullable<RemediationRequest['metadata']>> = {},
): RemediationRequest => ({
  metadata: { name, namespace: 'web', ...meta },
  spec: { policyRef: { name: 'p' }, alert: { source: 'generic', name: 'Down' } },
  status: { phase: 'Succeeded', completionTime },
});

const now = Date.parse('2026-12-02T00:00:00Z');
const flux = { labels: { 'kustomize.toolkit.fluxcd.io/name': 'team', 'kustomize.toolkit.fluxcd.io/namespace': 'web' } };
const argo = { annotations: { 'argocd.argoproj.io/tracking-id': 'web:remediator.dev/RemediationRequest:web/m' } };

test('a request applied by Flux or Argo CD is never due for deletion; any other is, after its TTL', () => {
  expect(ttlLeftMs(ended('a', '2026-12-01T00:00:00Z'), DEFAULT_RETENTION, now)).toBe(0);
  expect(ttlLeftMs(ended('b', '2026-12-01T00:00:00Z', flux), DEFAULT_RETENTION, now)).toBeUndefined();
  expect(ttlLeftMs(ended('c', '2026-12-01T00:00:00Z', argo), DEFAULT_RETENTION, now)).toBeUndefined();
  expect(appliedFromGit(ended('d', '2026-12-01T00:00:00Z', { labels: { 'app.kubernetes.io/instance': 'x' } }))).toBe(false);
});

test('the history limit counts and deletes only the requests Git does not own', () => {
  const requests = [
    ended('git-1', '2026-12-01T00:00:01Z', flux),
    ended('old', '2026-12-01T00:00:02Z'),
    ended('git-2', '2026-12-01T00:00:03Z', argo),
    ended('new', '2026-12-01T00:00:04Z'),
  ];
  expect(beyondHistoryLimit(requests, 1).map((r) => r.metadata?.name)).toEqual(['old']);
});

test('the lean request cache keeps the GitOps marks of a finished request (or retention would delete it)', () => {
  const fromGit = leanRequest(ended('g', '2026-12-01T00:00:00Z', { ...flux, annotations: { other: 'dropped' } }));
  expect(fromGit.metadata?.labels).toEqual({ 'kustomize.toolkit.fluxcd.io/name': 'team' });
  expect(ttlLeftMs(fromGit, DEFAULT_RETENTION, now)).toBeUndefined();
  expect(appliedFromGit(leanRequest(ended('a', '2026-12-01T00:00:00Z', argo)))).toBe(true);
  expect(leanRequest(ended('p', '2026-12-01T00:00:00Z')).metadata).not.toHaveProperty('labels');
});
