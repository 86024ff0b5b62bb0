export * from './device.js';
export * from './engine.js';
export * from './pool.js';
export * from './tensor.js';
export * from './random.js';
