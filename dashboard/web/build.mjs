// Bundles the dashboard: src/main.js (with uPlot and the CSS it imports) into
// dist/app.js and dist/app.css, copies src/index.html, and writes
// dist/SOURCES.sha256, the digests of the inputs, which a Go test compares against
// the sources so that a stale bundle cannot be committed unnoticed.
//
//   npm ci && npm run build
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';

mkdirSync('dist', { recursive: true });
await build({
  entryPoints: ['src/main.js'],
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  outfile: 'dist/app.js',
  legalComments: 'eof',
  banner: {
    js: '/*! stratus dashboard. Bundles uPlot 1.6.32: Copyright (c) 2025, Leon Sorokin, MIT Licensed. */',
    css: '/*! stratus dashboard. Includes uPlot 1.6.32 styles: Copyright (c) 2025, Leon Sorokin, MIT Licensed. */',
  },
  logLevel: 'info',
});
copyFileSync('src/index.html', 'dist/index.html');

// The inputs: this script, the pinned packages and every source file.
const inputs = ['build.mjs', 'package.json', 'package-lock.json',
  ...readdirSync('src').sort().map((f) => 'src/' + f)];
const lines = inputs.map((f) => createHash('sha256').update(readFileSync(f)).digest('hex') + '  ' + f + '\n');
writeFileSync('dist/SOURCES.sha256', lines.join(''));
