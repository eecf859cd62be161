// What a model file imports.
export { defineModel, isModel, Model, type ModelDefinition, type ModelScope } from './model.js';
export { Tensor, type LayerScope, type ParamOptions } from './builder.js';
export * from './ops.js';
export * from './blocks.js';
export { causalLM, type CausalLMOptions } from './causal-lm.js';
