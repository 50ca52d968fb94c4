// Builds the packet data plane's TUN addon (native/) at install. Only Linux has it, and a
// failure only warns: the proxy data plane needs no addon, so Sluice installs everywhere.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const nativeDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'native');

function warn(why) {
  process.stderr.write(
    `sluice: the packet data plane's addon was not built (${why}); the proxy data plane works without it\n`,
  );
}

if (process.platform !== 'linux') {
  warn(`${process.platform} has no TUN device Sluice can use`);
} else {
  const args = ['rebuild'];
  // Node's own headers beside the binary spare node-gyp a download (and work offline).
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  // npm puts its bundled node-gyp on PATH for install scripts; npm_config_node_gyp names it too.
  const gyp = process.env.npm_config_node_gyp;
  const cmd = gyp ? process.execPath : 'node-gyp';
  const r = spawnSync(cmd, gyp ? [gyp, ...args] : args, {
    cwd: nativeDir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  if (r.error) warn(r.error.message);
  else if (r.status !== 0) {
    const lines = r.stderr.toString().trim().split('\n');
    warn(lines.slice(-3).join(' | ') || `node-gyp exited with ${r.status}`);
  }
}
