#!/usr/bin/env node
// Completes package-lock.json with the platform-specific optional packages the registry
// this project is developed against does not mirror (it carries only the linux builds
// of e.g. @unrs/resolver-binding-*). npm then writes a lock that lists an optional
// dependency without its entry, and `npm ci` refuses it everywhere ("Missing: ... from
// lock file") — also against the full public registry. Each missing entry is added the
// way npm writes one on a machine that can see it: version, tarball URL, `optional`, and
// the `os`/`cpu` (and `libc`) taken from the package name, so npm skips it on other
// platforms without downloading it. Run after any `npm install` that changes the lock.
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const PLATFORM =
  /-(android|darwin|freebsd|linux|openharmony|win32|netbsd|openbsd|sunos|aix)-(arm64|arm|x64|ia32|loong64|ppc64|riscv64|s390x|wasm32)(?:-(gnu|musl|gnueabihf|musleabihf|eabi|msvc))?$/;
let added = 0;
for (const [where, pkg] of Object.entries(lock.packages)) {
  for (const [name, version] of Object.entries(pkg.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (lock.packages[key] || lock.packages[`${where}/node_modules/${name}`]) continue;
    const m = PLATFORM.exec(name);
    if (!m || !/^\d+\.\d+\.\d+/.test(version)) continue;
    const [, os, cpu, abi] = m;
    const base = name.split('/').pop();
    lock.packages[key] = {
      version,
      resolved: `https://registry.npmjs.org/${name}/-/${base}-${version}.tgz`,
      cpu: [cpu === 'arm' ? 'arm' : cpu],
      license: pkg.license,
      optional: true,
      os: [os],
      ...(abi === 'gnu' || abi === 'gnueabihf' ? { libc: ['glibc'] } : abi === 'musl' || abi === 'musleabihf' ? { libc: ['musl'] } : {}),
    };
    added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))));
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`complete-lockfile: added ${added} platform entr${added === 1 ? 'y' : 'ies'}`);
