/** The configuration model: ARM JSON in, validated and frozen RuntimeSnapshot out. */
export { validateDocument, validateFile, validateInputs, validateText } from './pipeline.js';
export type { InputsValidation, ValidateOptions, ValidationResult } from './pipeline.js';
export { STDIN, readInputs } from './inputs.js';
export { parseAddressMap, applyAddressMap } from './address-map.js';
export type { AddressMap } from './address-map.js';
export { parseConfigText, readConfigFile, normalizeDocument, LB_CHILD_ARRAYS } from './load.js';
export type { InputForm, ParseResult } from './load.js';
export { DEFAULTS, defaultAllocatedOutboundPorts } from './compile.js';
export { BOUNDS, IDLE_RANGES, MAX_TIMER_MS } from './bounds.js';
export { isRecord } from './json.js';
export { MAX_DEPTH, checkResourceDepth } from './limits.js';
export { NAME_FORM, nameProblem, invalidNameMessage } from './names.js';
