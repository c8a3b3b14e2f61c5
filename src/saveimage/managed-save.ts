// Managed save: one image per domain, kept by the host in <stateDir>/save/<name>.save
// (libvirt keeps them in /var/lib/libvirt/qemu/save). A later start restores
// from it and removes it.
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { invalidDomainName } from '../common/domain-name.js';
import { ErrorType, vmError } from '../common/errors.js';

export function managedSaveDir(stateDir: string): string {
  return join(stateDir, 'save');
}

export function managedSavePath(stateDir: string, name: string): string {
  // The name comes from the caller (managedSaveRemove, managedStart): '/' would reach files outside the dir.
  const why = invalidDomainName(name);
  if (why) throw vmError(ErrorType.OperationInvalid, why, { domain: String(name).slice(0, 300) });
  return join(managedSaveDir(stateDir), `${name}.save`);
}

/** The directory exists (mode 0700: images hold guest memory). */
export function ensureManagedSaveDir(stateDir: string): string {
  const dir = managedSaveDir(stateDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export function hasManagedSave(stateDir: string, name: string): boolean {
  const path = managedSavePath(stateDir, name);
  try {
    return existsSync(path) && statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Removes the image; true when there was one. */
export function removeManagedSave(stateDir: string, name: string): boolean {
  const existed = hasManagedSave(stateDir, name);
  rmSync(managedSavePath(stateDir, name), { force: true });
  return existed;
}
