#!/usr/bin/env node
import { Command } from 'commander';
import { createRequire } from 'node:module';
import { registerApply } from './commands/apply.js';
import { registerClock } from './commands/clock.js';
import { registerDemo } from './commands/demo.js';
import { registerExplain } from './commands/explain.js';
import { registerFlows } from './commands/flows.js';
import { registerLab } from './commands/lab.js';
import { registerRun } from './commands/run.js';
import { registerValidate } from './commands/validate.js';
import { EXIT_USAGE } from './options.js';

const require = createRequire(import.meta.url);
const { version } = require('../../../package.json') as { version: string };

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('sluice')
    .description('Layer-4 load balancer with Azure Standard Load Balancer flow semantics')
    .version(version)
    .showHelpAfterError()
    // An unknown command is a usage error, like an unknown flag (exit 2, not commander's 1).
    .exitOverride((err) => {
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    });
  registerValidate(program);
  registerExplain(program);
  registerRun(program);
  registerDemo(program);
  registerFlows(program);
  registerApply(program);
  registerClock(program);
  registerLab(program);
  return program;
}

await buildProgram().parseAsync(process.argv);
