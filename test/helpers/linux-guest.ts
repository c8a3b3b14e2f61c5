// The Linux test guest (built by setup: src/local/linux-guest.ts) from a test's side: where its
// kernel and initrd are, its kernel command line, its serial console, its disk records, and a
// client of its TCP counter that runs in another network namespace.
import { spawn, type ChildProcess } from 'node:child_process';
import { watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { findLinuxGuest, type LinuxGuest } from '../../src/local/linux-guest.js';

let found: LinuxGuest | undefined;

/** Looked up once per process: the lookup asks the package tools (seconds), and the guest does not change during a run. */
export function linuxGuest(): LinuxGuest {
  found ??= findLinuxGuest();
  if (!found) throw new Error('the Linux test guest is not built for these sources: run `npm run setup` (npm test does)');
  return found;
}

export interface GuestOptions {
  /** ADDR/PREFIX on the guest's first NIC; none: no network. */
  ip?: string;
  gw?: string;
  nic?: string;
  port?: number;
  intervalMs?: number;
  dirtyMib?: number;
  dirtyRateMibS?: number;
  /** Seconds between the dirtier's "VMFERRY-DIRTY passes=N" console lines (default 5). */
  dirtyReportS?: number;
  /** Block device the writer appends to (e.g. /dev/vda); none: no writer. */
  disk?: string;
  diskIntervalMs?: number;
  /** Panic the guest kernel this many ms after its workload starts (sysrq c). */
  panicMs?: number;
  /** Arm the guest's watchdog (/dev/watchdog) with this timeout and never feed it. */
  watchdogS?: number;
  /** Kernel messages on the console (slower under TCG); default quiet. */
  verbose?: boolean;
}

export const DEFAULT_GUEST_PORT = 5555;

export function guestCmdline(o: GuestOptions = {}): string {
  const words = ['console=ttyS0', 'panic=-1', o.verbose ? 'loglevel=7' : 'quiet'];
  const put = (k: string, v: string | number | undefined): void => {
    if (v === undefined) return;
    if (/\s/.test(String(v))) throw new Error(`vmferry.${k}: no spaces in kernel parameters (${v})`);
    words.push(`vmferry.${k}=${v}`);
  };
  put('ip', o.ip);
  put('gw', o.gw);
  put('if', o.nic);
  put('port', o.port);
  put('interval_ms', o.intervalMs);
  put('dirty_mib', o.dirtyMib);
  put('dirty_rate', o.dirtyRateMibS);
  put('report_s', o.dirtyReportS);
  put('disk', o.disk);
  put('disk_interval_ms', o.diskIntervalMs);
  put('panic_ms', o.panicMs);
  put('watchdog_s', o.watchdogS);
  return words.join(' ');
}

/**
 * Resolves with the serial log's text once `pattern` appears in it; rejects at the deadline or
 * when `abort` settles first (e.g. QEMU exited). Event-driven: wakes on changes to the log's
 * directory, never polls on a timer.
 */
export async function waitForSerial(logPath: string, pattern: RegExp, timeoutMs: number, abort?: Promise<unknown>): Promise<string> {
  let finish: (err?: Error, text?: string) => void = () => undefined;
  const done = new Promise<string>((resolve, reject) => {
    finish = (err, text) => (err ? reject(err) : resolve(text!));
  });
  let busy = false;
  let again = false;
  const check = async (): Promise<void> => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    do {
      again = false;
      const text = await readFile(logPath, 'utf8').catch(() => '');
      if (pattern.test(text)) finish(undefined, text);
    } while (again);
    busy = false;
  };
  const watcher = watch(dirname(logPath), (_e, name) => {
    if (!name || name === basename(logPath)) void check();
  });
  const timer = setTimeout(() => finish(new Error(`no ${pattern} in ${logPath} within ${timeoutMs} ms`)), timeoutMs);
  void abort?.then(
    () => finish(new Error(`gave up waiting for ${pattern} in ${logPath}: the guest went away`)),
    () => finish(new Error(`gave up waiting for ${pattern} in ${logPath}: the guest went away`)),
  );
  void check();
  try {
    return await done;
  } finally {
    clearTimeout(timer);
    watcher.close();
  }
}

/** Highest "VMFERRY-DISK-ACK n" on a serial log: every record up to it was durable in the guest. */
export function lastDiskAck(serialText: string): number {
  let last = 0;
  for (const m of serialText.matchAll(/^VMFERRY-DISK-ACK (\d+)\r?$/gm)) last = Math.max(last, Number(m[1]));
  return last;
}

const RECORD = 512;
const MAGIC = Buffer.from('VMFGDISK');

function fnv1a(b: Buffer): number {
  let h = 0x811c9dc5;
  for (const byte of b) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h;
}

export interface DiskCheck {
  slots: number;
  /** seqs from max(1, acked - slots + 1) to acked whose record is absent, damaged or stale. */
  missing: number[];
  /** Highest valid seq on the disk (may pass `acked`: written, not yet reported). */
  highest: number;
}

/** Reads a raw disk image the guest's writer used and checks every acknowledged record is there. */
export async function checkDiskRecords(imagePath: string, acked: number): Promise<DiskCheck> {
  const img = await readFile(imagePath);
  const slots = Math.floor(img.length / RECORD);
  const seqAt = (slot: number): number | undefined => {
    const r = img.subarray(slot * RECORD, slot * RECORD + RECORD);
    if (!r.subarray(0, 8).equals(MAGIC) || r.readUInt32LE(32) !== fnv1a(r.subarray(0, 32))) return undefined;
    return Number(r.readBigUInt64LE(8));
  };
  let highest = 0;
  for (let s = 0; s < slots; s++) highest = Math.max(highest, seqAt(s) ?? 0);
  const missing: number[] = [];
  for (let seq = Math.max(1, acked - slots + 1); seq <= acked; seq++) {
    if (seqAt((seq - 1) % slots) !== seq) missing.push(seq);
  }
  return { slots, missing, highest };
}

export interface CounterSample {
  seq: number;
  guestMs: number;
  /** Arrival time in the client process, ms since the epoch (sub-ms). */
  at: number;
}

export interface CounterReport {
  count: number;
  firstSeq: number;
  lastSeq: number;
  /** Each place the sequence jumped: after which seq, and how many were missing. */
  gaps: { after: number; missing: number }[];
  longestPauseMs: number;
  /** The seq that arrived after the longest pause. */
  longestPauseBefore: number;
}

export interface CounterClient {
  samples: CounterSample[];
  /** Connect time in the client process (ms since the epoch). */
  connected: Promise<number>;
  /** Resolves with the first sample at or after `seq`; rejects at the deadline or if the stream ends. */
  waitForSeq(seq: number, timeoutMs: number): Promise<CounterSample>;
  /** Resolves with the first sample that arrives after this call. */
  next(timeoutMs: number): Promise<CounterSample>;
  report(): CounterReport;
  /** Settles when the stream ends, with why (close, error). */
  ended: Promise<string>;
  close(): Promise<void>;
}

// Runs inside the client namespace: stamps each line with its arrival time there, so the test
// process's own event loop cannot blur a pause. Output: "C <at>", "<seq> <guestMs> <at>", "E msg", "X".
const CLIENT_SCRIPT = `
const net = require('node:net');
const now = () => (performance.timeOrigin + performance.now()).toFixed(2);
const s = net.connect({ host: process.argv[1], port: Number(process.argv[2]) });
let buf = '';
s.setNoDelay(true);
s.on('connect', () => process.stdout.write('C ' + now() + '\\n'));
s.on('data', (d) => {
  const at = now();
  buf += d;
  let out = '', i;
  while ((i = buf.indexOf('\\n')) >= 0) { out += buf.slice(0, i) + ' ' + at + '\\n'; buf = buf.slice(i + 1); }
  if (out) process.stdout.write(out);
});
s.on('error', (e) => { process.stdout.write('E ' + e.message + '\\n'); process.exit(1); });
s.on('close', () => { process.stdout.write('X\\n'); process.exit(0); });
`;

/** Connects to the guest's counter from `netnsPrefix` (e.g. ['ip','netns','exec',ns]; [] for here). */
export function connectCounter(netnsPrefix: string[], host: string, port = DEFAULT_GUEST_PORT): CounterClient {
  const argv = [...netnsPrefix, process.execPath, '-e', CLIENT_SCRIPT, host, String(port)];
  const [program, ...args] = argv as [string, ...string[]];
  const child: ChildProcess = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const samples: CounterSample[] = [];
  const waiters = new Set<{ test: (s: CounterSample) => boolean; resolve: (s: CounterSample) => void }>();
  let resolveConnected: (at: number) => void = () => undefined;
  const connected = new Promise<number>((r) => (resolveConnected = r));
  let endReason: string | undefined;
  const ended = new Promise<string>((resolve) => {
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code, signal) => {
      endReason ??= `client exited (${signal ?? code})${stderr ? `: ${stderr.trim()}` : ''}`;
      resolve(endReason);
    });
  });
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const [a, b, c] = line.split(' ');
      if (a === 'C') resolveConnected(Number(b));
      else if (a === 'E') endReason = `connection error: ${line.slice(2)}`;
      else if (a === 'X') endReason ??= 'connection closed by the guest';
      else {
        const s = { seq: Number(a), guestMs: Number(b), at: Number(c) };
        samples.push(s);
        for (const w of waiters) if (w.test(s)) w.resolve(s);
      }
    }
  });
  const waitFor = (test: (s: CounterSample) => boolean, what: string, timeoutMs: number): Promise<CounterSample> =>
    new Promise((resolve, reject) => {
      const w = {
        test,
        resolve: (s: CounterSample) => {
          clearTimeout(timer);
          waiters.delete(w);
          resolve(s);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`counter: no ${what} within ${timeoutMs} ms (last seq ${samples.at(-1)?.seq ?? 'none'}; ${endReason ?? 'stream open'})`));
      }, timeoutMs);
      waiters.add(w);
      void ended.then((why) => {
        if (waiters.delete(w)) {
          clearTimeout(timer);
          reject(new Error(`counter: no ${what}: ${why}`));
        }
      });
    });
  return {
    samples,
    connected,
    ended,
    waitForSeq: (seq, timeoutMs) => {
      const have = samples.find((s) => s.seq >= seq);
      return have ? Promise.resolve(have) : waitFor((s) => s.seq >= seq, `seq ${seq}`, timeoutMs);
    },
    next: (timeoutMs) => waitFor(() => true, 'sample', timeoutMs),
    report: () => counterReport(samples),
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await ended;
    },
  };
}

export function counterReport(samples: CounterSample[]): CounterReport {
  const r: CounterReport = {
    count: samples.length,
    firstSeq: samples[0]?.seq ?? 0,
    lastSeq: samples.at(-1)?.seq ?? 0,
    gaps: [],
    longestPauseMs: 0,
    longestPauseBefore: 0,
  };
  for (let i = 1; i < samples.length; i++) {
    const p = samples[i - 1]!;
    const s = samples[i]!;
    if (s.seq !== p.seq + 1) r.gaps.push({ after: p.seq, missing: s.seq - p.seq - 1 });
    if (s.at - p.at > r.longestPauseMs) {
      r.longestPauseMs = s.at - p.at;
      r.longestPauseBefore = s.seq;
    }
  }
  return r;
}

export interface LinuxDomainXml {
  name: string;
  uuid: string;
  memoryMiB: number;
  /** The guest's kernel command line (guestCmdline()). */
  cmdline: string;
  /** The serial console's log file (the guest's markers and disk acknowledgements). */
  serialLog: string;
  /** vda, on the virtio bus, cache none (a migration needs it). */
  disk?: { path: string; format: 'raw' | 'qcow2' };
  /** One virtio NIC on a Linux bridge. */
  nic?: { mac: string; bridge: string };
  /** Guest RAM in a shared file the host can read (DomainInfo.memoryBackingFile), as guest-memory.ts expects. */
  sharedMemory?: boolean;
}

/**
 * The Linux test guest as a domain: direct kernel boot, host-model CPU (qemu64 has panicked the
 * guest after a TCG migration), no USB controller and no balloon (nothing the guest does not use).
 */
export function linuxGuestXml(d: LinuxDomainXml): string {
  const g = linuxGuest();
  const disk = d.disk
    ? `
    <disk type='file' device='disk'>
      <driver name='qemu' type='${d.disk.format}' cache='none'/>
      <source file='${d.disk.path}'/>
      <target dev='vda' bus='virtio'/>
    </disk>`
    : '';
  const nic = d.nic
    ? `
    <interface type='bridge'>
      <mac address='${d.nic.mac}'/>
      <source bridge='${d.nic.bridge}'/>
      <model type='virtio'/>
    </interface>`
    : '';
  return `<domain type='qemu'>
  <name>${d.name}</name>
  <uuid>${d.uuid}</uuid>
  <memory unit='MiB'>${d.memoryMiB}</memory>${d.sharedMemory ? "\n  <memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>" : ''}
  <vcpu>1</vcpu>
  <cpu mode='host-model'/>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${g.kernel}</kernel>
    <initrd>${g.initrd}</initrd>
    <cmdline>${d.cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <devices>${disk}
    <controller type='usb' model='none'/>${nic}
    <serial type='file'>
      <source path='${d.serialLog}' append='on'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}
