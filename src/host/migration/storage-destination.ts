// The destination's half of a storage migration: before anything changes,
// every image the source announced is checked (a file disk in the incoming
// definition, its path free, its directory there with room for the data, for
// copy-storage-inc its backing file present); then each image is claimed
// (O_EXCL, so nothing that was there is ever overwritten), recorded in the
// job, and made by qemu-img with the source's format, virtual size and
// cluster size. The incoming QEMU exports them from its NBD server on the
// migration address (tunnelled: on a unix socket the worker joins tunnel
// connections to, tunnel-nbd.ts); an undo deletes exactly the images this job recorded.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, rmSync, statfsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/index.js';
import type { CookieNbd, CookieNbdDisk } from '../../migration/cookie.js';
import { exportDisk, queryBlockImages, startNbdServer, type NbdServerOptions } from '../../qemu/migration-engine-storage.js';
import { which } from '../../support/which.js';
import type { RunningDomain } from '../running-domain.js';

export interface IncomingImage {
  target: string;
  path: string;
  format: 'raw' | 'qcow2';
  disk: CookieNbdDisk;
  /** copy-storage-inc: the backing file as the top image names it, and where it resolves here. */
  backing?: { name: string; path: string; format?: string };
}

const MIB = 1024 * 1024;

/** Refuses, before anything changes, an announced disk this host cannot take; returns what to create. */
export function checkIncomingImages(def: DomainDef, nbd: CookieNbd): IncomingImage[] {
  const images = nbd.disks.map((d): IncomingImage => {
    const disk = def.devices.disks.find((x) => x.target.dev === d.target);
    if (!disk)
      throw vmError(ErrorType.OperationInvalid, `the source copies disk '${d.target}', which the incoming definition does not have`, { disk: d.target });
    const path = disk.source?.file;
    if (disk.type !== 'file' || path === undefined || !isAbsolute(path)) {
      throw vmError(ErrorType.ConfigUnsupported, `disk '${d.target}': only file disks with an absolute path are created for a storage copy`, {
        disk: d.target,
      });
    }
    const format = disk.driver?.type ?? 'raw';
    if (format !== 'raw' && format !== 'qcow2') throw vmError(ErrorType.ConfigUnsupported, `disk '${d.target}': creating a '${format}' image is not built`);
    if (existsSync(path)) {
      throw vmError(ErrorType.OperationInvalid, `disk '${d.target}': destination image ${path} already exists; a storage copy never overwrites a file`, {
        disk: d.target,
        path,
      });
    }
    const dir = dirname(path);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw vmError(ErrorType.OperationInvalid, `disk '${d.target}': directory ${dir} for the destination image does not exist`, { disk: d.target, path });
    }
    let backing: IncomingImage['backing'];
    if (d.backingFile !== undefined) {
      if (format !== 'qcow2') throw vmError(ErrorType.ConfigUnsupported, `disk '${d.target}': a backing file needs a qcow2 image here, not '${format}'`);
      const bpath = resolve(dir, d.backingFile);
      if (!existsSync(bpath)) {
        throw vmError(
          ErrorType.OperationInvalid,
          `disk '${d.target}': copy-storage-inc needs the backing file ${bpath} on this host (the top image names '${d.backingFile}')`,
          { disk: d.target, backing: bpath },
        );
      }
      backing = { name: d.backingFile, path: bpath, ...(d.backingFormat ? { format: d.backingFormat } : {}) };
    }
    return { target: d.target, path, format, disk: d, ...(backing ? { backing } : {}) };
  });
  checkRoom(images);
  return images;
}

/** Room for the data each file system will receive: the source's allocation (the virtual size when unknown), plus headroom. */
function checkRoom(images: IncomingImage[]): void {
  const need = new Map<string, { bytes: number; free: number }>();
  for (const img of images) {
    const dir = dirname(img.path);
    const st = statfsSync(dir);
    const key = `${String(statSync(dir).dev)}`;
    const e = need.get(key) ?? { bytes: 0, free: Number(st.bavail) * Number(st.bsize) };
    e.bytes += (img.disk.allocationBytes ?? img.disk.capacityBytes) + MIB;
    need.set(key, e);
    if (e.bytes > e.free) {
      throw vmError(
        ErrorType.OperationFailed,
        `not enough free space for disk '${img.target}' at ${img.path}: the copy needs ${Math.ceil(e.bytes / MIB)} MiB, ${Math.floor(e.free / MIB)} MiB are free`,
        { disk: img.target, path: img.path, needBytes: e.bytes, freeBytes: e.free },
      );
    }
  }
}

async function qemuImg(args: string[]): Promise<void> {
  const program = which('qemu-img');
  if (!program) throw vmError(ErrorType.ConfigUnsupported, 'qemu-img is not on PATH: it creates the destination images of a storage copy');
  await new Promise<void>((resolvePromise, reject) => {
    const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolvePromise()
        : reject(vmError(ErrorType.OperationFailed, `qemu-img ${args[0]} failed (${String(code)}): ${stderr.trim().slice(0, 500)}`)),
    );
  });
}

/**
 * Creates each image: claimed first (O_EXCL; `record` runs before, so an undo knows it is
 * this job's), then written by qemu-img with the source's geometry.
 */
export async function createImages(images: IncomingImage[], record: (path: string) => void): Promise<void> {
  for (const img of images) {
    record(img.path);
    try {
      closeSync(openSync(img.path, 'wx', 0o600));
    } catch (err) {
      throw vmError(ErrorType.OperationInvalid, `disk '${img.target}': cannot claim ${img.path}: ${(err as Error).message}`, { path: img.path });
    }
    const opts: string[] = [];
    if (img.format === 'qcow2' && img.disk.clusterSizeBytes !== undefined) opts.push(`cluster_size=${img.disk.clusterSizeBytes}`);
    const args = ['create', '-q', '-f', img.format];
    if (opts.length > 0) args.push('-o', opts.join(','));
    if (img.backing) args.push('-b', img.backing.name, '-F', img.backing.format ?? 'qcow2');
    args.push('--', img.path, String(img.disk.capacityBytes));
    await qemuImg(args);
  }
}

/** Deletes exactly the files this job recorded as created; what was never made is skipped. */
export function deleteCreatedImages(paths: readonly string[], warn: (msg: string, err: unknown) => void): void {
  for (const p of paths) {
    try {
      rmSync(p, { force: true });
    } catch (err) {
      warn(`could not delete the destination image ${p}`, err);
    }
  }
}

/** Starts the NBD server (on the migration address, or a unix socket the tunnel reaches) and exports every created image writable. */
export async function exportImages(dom: RunningDomain, images: IncomingImage[], server: NbdServerOptions): Promise<void> {
  await startNbdServer(dom.qmp, server);
  const open = await queryBlockImages(dom.qmp);
  for (const img of images) {
    const node = open.get(img.target)?.nodeName;
    if (node === undefined) throw vmError(ErrorType.OperationFailed, `the incoming QEMU has no image open for disk '${img.target}'`);
    await exportDisk(dom.qmp, img.target, node);
  }
}
