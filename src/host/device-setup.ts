// What the host settles about a definition's devices before QEMU starts it:
// every device address (as libvirt assigns them when it parses XML, so the
// live XML, save images and migration carry them), and the socket of each
// virtio channel in mode bind that names no path, in a directory of its own
// under the run directory (libvirt's channel/target/domain-<id>-<name>; here
// a UUID prefix stands for the id, which vmferry does not have). That
// generated path is in the live XML only: the migratable form drops it.
// The directory is made only when QEMU is about to be set up (createChannelDir),
// so a start refused earlier leaves nothing, and one failing later removes it.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorType, vmError } from '../common/errors.js';
import { assignAddresses, type DomainDef } from '../domain/index.js';

// sun_path holds 108 bytes with the NUL; QEMU truncates silently past that.
const MAX_UNIX_PATH = 107;

export function channelDir(runDir: string, def: { name: string; uuid: string }): string {
  return join(runDir, 'channel', 'target', `domain-${def.uuid.slice(0, 8)}-${def.name.slice(0, 20)}`);
}

/** A copy of `def` ready for the command line, generated channel socket paths filled in (createChannelDir makes their directory). */
export function prepareDevices(input: DomainDef, runDir: string): DomainDef {
  const def = assignAddresses(input);
  const dir = channelDir(runDir, def);
  (def.devices.channels ?? []).forEach((ch, i) => {
    if (ch.type !== 'unix' || (ch.sourceMode ?? 'bind') !== 'bind' || ch.sourcePath !== undefined) return;
    ch.sourceMode ??= 'bind';
    ch.sourcePath = join(dir, ch.targetName ?? `channel${i}`);
    if (Buffer.byteLength(ch.sourcePath) > MAX_UNIX_PATH) {
      throw vmError(
        ErrorType.ConfigUnsupported,
        `channel socket path ${ch.sourcePath} is longer than ${MAX_UNIX_PATH} bytes; use a shorter run directory or name a path`,
      );
    }
  });
  return def;
}

/**
 * Makes the domain's channel directory when a socket of `def` (from
 * prepareDevices) lies in it; returns what undoes that: removing the directory
 * if this call made it, nothing if it was there already or not needed.
 */
export function createChannelDir(runDir: string, def: DomainDef): () => void {
  const dir = channelDir(runDir, def);
  const needed = (def.devices.channels ?? []).some((ch) => ch.type === 'unix' && ch.sourcePath?.startsWith(`${dir}/`));
  if (!needed || existsSync(dir)) return () => undefined;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return () => rmSync(dir, { recursive: true, force: true });
}

/** Removes the generated channel sockets of a domain that stopped. */
export function removeChannelDir(runDir: string, def: { name: string; uuid: string }): void {
  rmSync(channelDir(runDir, def), { recursive: true, force: true });
}
