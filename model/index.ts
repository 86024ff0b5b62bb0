export * from './config.js';
export * from './posembed.js';
export * from './cropa.js';
export * from './masking.js';
export * from './params.js';
export * from './safetensors.js';
export * from './checkpoint.js';
export * from './reference.js';
