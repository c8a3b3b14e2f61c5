// usocket makes its sockets without close-on-exec, and Node has no fcntl to set
// it afterwards, so every child the worker spawns would inherit every QMP
// connection open at that moment. QEMU serves one monitor client at a time: a
// compressor or a QEMU that outlives a killed worker would then hold another
// domain's monitor, and the restarted worker could not reconnect to it (its
// handshake waits for a greeting that never comes). So each long-lived child
// gets /dev/null placed over those descriptor numbers (spawn's stdio array maps
// index to descriptor in the child; dup2 there closes the inherited socket),
// which leaves the worker's own connections untouched.
import { openSync } from 'node:fs';
import type { StdioOptions } from 'node:child_process';

type StdioEntry = Extract<StdioOptions, readonly unknown[]>[number];

const inheritable = new Set<number>();
let devNull: number | undefined;

/** A descriptor every child would inherit (a usocket connection), from now until forget(). */
export function trackInheritable(fd: number): void {
  if (Number.isInteger(fd) && fd > 2) inheritable.add(fd);
}

export function forgetInheritable(fd: number): void {
  inheritable.delete(fd);
}

/** `stdio` for spawn, extended so the child inherits none of the tracked descriptors. */
export function childStdio(stdio: readonly StdioEntry[]): StdioEntry[] {
  const out = [...stdio];
  const masked = [...inheritable].filter((fd) => fd >= out.length || out[fd] === undefined || out[fd] === 'ignore');
  if (masked.length === 0) return out;
  devNull ??= openSync('/dev/null', 'r+');
  for (const fd of masked) {
    while (out.length <= fd) out.push('ignore');
    out[fd] = devNull;
  }
  return out;
}
