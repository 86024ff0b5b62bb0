export * from './device.js';
export * from './engine.js';
export * from './pool.js';
export * from './tensor.js';
export * from './random.js';
export * from './tape.js';
export * from './nn.js';
export * from './optim.js';
export * as ops from './ops/index.js';
