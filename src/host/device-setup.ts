// What the host settles about a definition's devices before QEMU starts it:
// every device address (as libvirt assigns them when it parses XML, so the
// live XML, save images and migration carry them), and the socket of each
// virtio channel in mode bind that names no path, in a directory of its own
// under the run directory (libvirt's channel/target/domain-<id>-<name>; here
// a UUID prefix stands for the id, which vmferry does not have). That
// generated path is in the live XML only: the migratable form drops it.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorType, vmError } from '../common/errors.js';
import { assignAddresses, type DomainDef } from '../domain/index.js';

// sun_path holds 108 bytes with the NUL; QEMU truncates silently past that.
const MAX_UNIX_PATH = 107;

export function channelDir(runDir: string, def: { name: string; uuid: string }): string {
  return join(runDir, 'channel', 'target', `domain-${def.uuid.slice(0, 8)}-${def.name.slice(0, 20)}`);
}

/** A copy of `def` ready for the command line; creates the channel directory when a channel needs one. */
export function prepareDevices(input: DomainDef, runDir: string): DomainDef {
  const def = assignAddresses(input);
  const dir = channelDir(runDir, def);
  let needsDir = false;
  (def.devices.channels ?? []).forEach((ch, i) => {
    if (ch.type !== 'unix' || (ch.sourceMode ?? 'bind') !== 'bind' || ch.sourcePath !== undefined) return;
    ch.sourceMode ??= 'bind';
    ch.sourcePath = join(dir, ch.targetName ?? `channel${i}`);
    needsDir = true;
    if (Buffer.byteLength(ch.sourcePath) > MAX_UNIX_PATH) {
      throw vmError(
        ErrorType.ConfigUnsupported,
        `channel socket path ${ch.sourcePath} is longer than ${MAX_UNIX_PATH} bytes; use a shorter run directory or name a path`,
      );
    }
  });
  if (needsDir) mkdirSync(dir, { recursive: true, mode: 0o700 });
  return def;
}

/** Removes the generated channel sockets of a domain that stopped. */
export function removeChannelDir(runDir: string, def: { name: string; uuid: string }): void {
  rmSync(channelDir(runDir, def), { recursive: true, force: true });
}
