export * from './runtime.js';
export * from './elementwise.js';
