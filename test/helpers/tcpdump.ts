// tcpdump started by a test: it captures nothing until it says so on stderr, so
// a capture that must see a whole exchange waits for that line (an event with a
// reason to fail), never for a fixed time.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

/** Resolves once `child` (a tcpdump) prints "listening on"; rejects if it ends first. */
export async function tcpdumpListening(child: ChildProcess): Promise<void> {
  let err = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (/listening on/.test(err)) resolve();
    });
    child.once('close', () => reject(new Error(`tcpdump ended before it listened: ${err}`)));
  });
}

/**
 * Runs `argv` (a tcpdump writing whole packets to `file`, possibly behind `ip netns exec`)
 * while `during` runs, and returns the pcap it wrote; the file is removed.
 */
export async function capture(argv: [string, ...string[]], file: string, during: () => Promise<void>): Promise<Buffer> {
  const [program, ...args] = argv;
  const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  try {
    await tcpdumpListening(child);
    await during();
  } finally {
    child.kill('SIGINT');
    await exited;
  }
  const pcap = readFileSync(file);
  rmSync(file, { force: true });
  return pcap;
}

/** How many times `needle` occurs in a capture (non-overlapping). */
export function countOf(hay: Buffer, needle: Buffer): number {
  let n = 0;
  for (let i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, i + needle.length)) n++;
  return n;
}

/**
 * The TCP port pair of every IPv4 packet in a capture (classic pcap, Ethernet or Linux cooked
 * link type), in capture order: what tells which listener a stream went to.
 */
export function tcpPorts(pcap: Buffer): { src: number; dst: number }[] {
  const magic = pcap.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && pcap.readUInt32BE(0) !== 0xa1b2c3d4 && pcap.readUInt32BE(0) !== 0xa1b23c4d) throw new Error('not a classic pcap file');
  const u32 = (o: number): number => (le ? pcap.readUInt32LE(o) : pcap.readUInt32BE(o));
  const linkType = u32(20);
  const l2 = linkType === 1 ? 14 : linkType === 113 ? 16 : undefined;
  if (l2 === undefined) throw new Error(`pcap link type ${linkType} not handled`);
  const out: { src: number; dst: number }[] = [];
  for (let o = 24; o + 16 <= pcap.length;) {
    const caplen = u32(o + 8);
    const p = o + 16;
    o = p + caplen;
    if (o > pcap.length || caplen < l2 + 20) continue;
    const ip = p + l2;
    if (pcap.readUInt16BE(p + l2 - 2) !== 0x0800 || pcap[ip]! >> 4 !== 4 || pcap[ip + 9] !== 6) continue;
    const tcp = ip + (pcap[ip]! & 0x0f) * 4;
    if (tcp + 4 > o) continue;
    out.push({ src: pcap.readUInt16BE(tcp), dst: pcap.readUInt16BE(tcp + 2) });
  }
  return out;
}
