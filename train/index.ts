export * from './smoke.js';
