// Memory sizes the way libvirt reads them: an unsigned decimal integer and a
// `unit` attribute (KiB when absent), stored as KiB with bytes rounded up to
// the next KiB.
import { xmlError, type XmlWhere } from '../xml/xml-errors.js';

/** 1 PiB: larger than any machine QEMU runs on, small enough to stay exact in a double. */
export const MAX_MEMORY_KIB = 2 ** 40;

const POWERS: Readonly<Record<string, number>> = { k: 1, m: 2, g: 3, t: 4, p: 5, e: 6 };

/**
 * Bytes per unit: b/byte/bytes = 1; K, KiB = 1024; KB = 1000; likewise M, G, T,
 * P, E. The letter is case-insensitive as in libvirt. Undefined for an unknown unit.
 */
export function memoryUnitBytes(unit: string | undefined): bigint | undefined {
  if (unit === undefined || unit === '') return 1024n;
  const lower = unit.toLowerCase();
  if (lower === 'b' || lower === 'byte' || lower === 'bytes') return 1n;
  const power = Object.prototype.hasOwnProperty.call(POWERS, lower.charAt(0)) ? POWERS[lower.charAt(0)] : undefined;
  if (power === undefined) return undefined;
  const rest = lower.slice(1);
  if (rest === '' || rest === 'ib') return 1024n ** BigInt(power);
  if (rest === 'b') return 1000n ** BigInt(power);
  return undefined;
}

export type MemoryParse = { kib: number } | { error: string };

export function memoryToKiB(value: string, unit: string | undefined): MemoryParse {
  const scale = memoryUnitBytes(unit);
  if (scale === undefined) return { error: `unknown memory unit '${unit ?? ''}'` };
  const text = value.trim();
  if (!/^[0-9]+$/.test(text)) {
    return { error: `memory size '${value}' is not a ${text.startsWith('-') ? 'non-negative ' : ''}integer` };
  }
  if (text.length > 30) return { error: `memory size '${text}' is too large` };
  const amount = BigInt(text);
  if (amount === 0n) return { error: 'memory size must be greater than zero' };
  const kib = (amount * scale + 1023n) / 1024n;
  if (kib > BigInt(MAX_MEMORY_KIB)) {
    return { error: `memory size ${text}${unit !== undefined ? ` ${unit}` : ''} is too large (limit ${MAX_MEMORY_KIB} KiB)` };
  }
  return { kib: Number(kib) };
}

/** KiB from a value and unit, or an XmlError at `where`. */
export function parseMemoryKiB(value: string, unit: string | undefined, where: XmlWhere): number {
  const r = memoryToKiB(value, unit);
  if ('error' in r) throw xmlError(r.error, where, { value, unit });
  return r.kib;
}
