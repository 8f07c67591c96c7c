#!/usr/bin/env node
// The first load's size: index.html and everything it pulls in before the app can run (the
// entry script, its statically imported chunks — the modulepreload links — and the CSS),
// each gzipped at level 9 as a CDN would serve them. Prints JSON; exits 1 over the budget.
//   node scripts/size.mjs [dist directory]
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';

const BUDGET_BYTES = 150 * 1024;
const dist = resolve(process.argv[2] ?? new URL('../dist', import.meta.url).pathname);
const html = readFileSync(join(dist, 'index.html'), 'utf8');

const gzip = (buffer) => gzipSync(buffer, { level: 9 }).length;
const measure = (path) => {
  const buffer = readFileSync(join(dist, path));
  return { path, bytes: buffer.length, gzip_bytes: gzip(buffer) };
};

// Only what index.html loads at once: module scripts, modulepreloads and stylesheets.
const initialPaths = new Set();
for (const match of html.matchAll(/<(script|link)\b[^>]*>/g)) {
  const tag = match[0];
  const url = /\b(?:src|href)="([^"]+)"/.exec(tag)?.[1];
  if (!url || /^(https?:)?\/\//.test(url)) continue;
  const isScript = match[1] === 'script' && /type="module"/.test(tag);
  const isPreload = /rel="modulepreload"/.test(tag);
  const isStyle = /rel="stylesheet"/.test(tag);
  if (isScript || isPreload || isStyle) initialPaths.add(url.replace(/^\//, ''));
}
if (/<script(?![^>]*\bsrc=)[^>]*>/.test(html) || /<style\b/.test(html)) {
  console.error('size.mjs: index.html has an inline script or style, which the CSP refuses');
  process.exit(1);
}

const initial = [{ path: 'index.html', bytes: Buffer.byteLength(html), gzip_bytes: gzip(Buffer.from(html)) }, ...[...initialPaths].map(measure)];
const assets = readdirSync(join(dist, 'assets')).filter((f) => statSync(join(dist, 'assets', f)).isFile());
const lazy = assets.map((f) => `assets/${f}`).filter((p) => !initialPaths.has(p)).map(measure);

const sum = (files) => files.reduce((n, f) => n + f.gzip_bytes, 0);
const result = {
  initial_gzip_bytes: sum(initial),
  budget_gzip_bytes: BUDGET_BYTES,
  within_budget: sum(initial) <= BUDGET_BYTES,
  initial,
  lazy_gzip_bytes: sum(lazy),
  lazy,
  total_gzip_bytes: sum(initial) + sum(lazy),
};
console.log(JSON.stringify(result, null, 2));
if (!result.within_budget) process.exit(1);
