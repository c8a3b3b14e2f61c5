// vmferry codec-server: serves the payload codec (VMFERRY_PAYLOAD_KEY_FILE) to the
// Web UI and the Temporal CLI until interrupted. Needs no Temporal connection.
import type { AddressInfo } from 'node:net';
import { createCodecServer } from '../../codec/codec-server.js';
import { payloadCodecFor } from '../../codec/key-file.js';
import { stringOpt } from '../args.js';
import { UsageError } from '../exit-codes.js';
import { type Verb, VALUE } from '../verb.js';

function listenAddress(v: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(v);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new UsageError(`--listen must be HOST:PORT, got ${JSON.stringify(v)}`);
  return { host: m[1] ?? m[2]!, port };
}

export const codecServerVerb: Verb = {
  summary: 'serve the payload codec (VMFERRY_PAYLOAD_KEY_FILE) to the Web UI / Temporal CLI',
  usage: 'vmferry codec-server [--listen HOST:PORT (127.0.0.1:8888)] [--ui-origin URL (http://localhost:8233), repeatable]',
  options: { listen: VALUE, 'ui-origin': { type: 'string', multiple: true } },
  local: true,
  async run(ctx, _args, opts) {
    if (!ctx.payloadKeyFiles) throw new UsageError('set VMFERRY_PAYLOAD_KEY_FILE to the key file the workers use');
    const codec = payloadCodecFor(ctx.payloadKeyFiles);
    const { host, port } = listenAddress(stringOpt(opts.listen) ?? '127.0.0.1:8888');
    const origins = Array.isArray(opts['ui-origin']) ? opts['ui-origin'] : ['http://localhost:8233', 'http://127.0.0.1:8233'];
    const server = createCodecServer(codec, { allowedOrigins: origins });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    const a = server.address() as AddressInfo;
    const url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    ctx.err(`codec server listening on ${url} (origins ${origins.join(', ')}); Ctrl-C stops it`);
    await new Promise<void>((resolve) => {
      const stop = (): void => void server.close(() => resolve());
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return { url };
  },
};
