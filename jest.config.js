// Tests run on the compiled output (`npm run build` first): one type-check, no per-file transpiling,
// and the same ESM the controller runs in production.
/** @type {import('jest').Config} */
export default {
  projects: [
    {
      displayName: 'unit',
      testMatch: ['<rootDir>/dist/src/**/*.test.js'],
      transform: {},
      testEnvironment: 'node',
    },
    {
      displayName: 'integration',
      testMatch: ['<rootDir>/dist/test/e2e/**/*.test.js', '<rootDir>/dist/test/testbed/**/*.test.js'],
      transform: {},
      testEnvironment: 'node',
      globalSetup: '<rootDir>/dist/test/testbed/global-setup.js',
      globalTeardown: '<rootDir>/dist/test/testbed/global-teardown.js',
    },
    {
      // Tests that measure the API server as a whole (its request counters) and so must
      // not share it with other files: run alone, after the rest (see `npm test`).
      displayName: 'serial',
      testMatch: ['<rootDir>/dist/test/serial/**/*.test.js'],
      transform: {},
      testEnvironment: 'node',
      globalSetup: '<rootDir>/dist/test/testbed/global-setup.js',
      globalTeardown: '<rootDir>/dist/test/testbed/global-teardown.js',
    },
  ],
  maxWorkers: 2,
  // Integration tests wait on real processes; unit tests finish far below this anyway.
  testTimeout: 120000,
};
