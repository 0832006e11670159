/** sameJson: JSON equality, blind to realms and to undefined-valued keys, as the API server is. */
import { isDeepStrictEqual } from 'node:util';
import { runInNewContext } from 'node:vm';
import { sameJson } from './same-json.js';

test('objects and arrays from another realm equal their copies here', () => {
  const status = { phase: 'Approved', targets: ['i-1', 'i-2'], enrichment: { instances: [{ instanceId: 'i-1', tags: { a: 'b' } }] } };
  const foreign = runInNewContext(`(${JSON.stringify(status)})`) as typeof status;
  expect(isDeepStrictEqual(foreign, status)).toBe(false); // what made the controller write in a loop
  expect(sameJson(foreign, status)).toBe(true);
  expect(sameJson(status, foreign)).toBe(true);
});

test('undefined-valued keys are absent keys; anything else that differs is a difference', () => {
  expect(sameJson({ a: 1, b: undefined }, { a: 1 })).toBe(true);
  expect(sameJson({ a: 1 }, { a: 1, b: undefined })).toBe(true);
  expect(sameJson({ a: 1 }, { a: 2 })).toBe(false);
  expect(sameJson({ a: 1 }, { a: 1, b: null })).toBe(false);
  expect(sameJson({ a: [1, 2] }, { a: [2, 1] })).toBe(false);
  expect(sameJson({ a: [1] }, { a: { 0: 1 } })).toBe(false);
  expect(sameJson({ a: '1' }, { a: 1 })).toBe(false);
  expect(sameJson({ a: { b: 1 } }, { a: { c: 1 } })).toBe(false);
  expect(sameJson({ a: { b: 1 } }, { a: { b: 1, c: 0 } })).toBe(false);
  expect(sameJson({}, {})).toBe(true);
});
