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
      testMatch: ['<rootDir>/dist/test/**/*.test.js'],
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
