// The whole suite, bundled once per runner (Node/Dawn and headless Chromium).
import { closeEngine } from './helpers.js';
import './engine/device.test.js';
import './engine/pool.test.js';
import './kernels/elementwise.test.js';

after(closeEngine);
