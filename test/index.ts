// Root hooks of the suite. scripts/build.mjs bundles this with every test/**/*.test.ts, once per
// runner (Node/Dawn and headless Chromium).
import { closeEngine } from './helpers.js';

after(closeEngine);
