// The differentiable ops, each a forward and its backward side by side.
export * from './linear.js';
export * from './elementwise.js';
export * from './gelu.js';
export * from './layernorm.js';
export * from './attention.js';
export * from './softmax.js';
export * from './rows.js';
export * from './reshape.js';
export * from './reduce.js';
export * from './loss.js';
export * from './droppath.js';
