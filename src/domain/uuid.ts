// Domain UUIDs: libvirt reads 32 hex digits with or without the usual dashes
// (and ignores surrounding blanks); we keep them dashed and lowercase.
import { randomUUID } from 'node:crypto';

const DASHED = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const PLAIN = /^[0-9a-fA-F]{32}$/;

/** Canonical dashed lowercase form, or undefined when `text` is not a UUID. */
export function normalizeUuid(text: string): string | undefined {
  const t = text.trim();
  if (!DASHED.test(t) && !PLAIN.test(t)) return undefined;
  const hex = t.replace(/-/g, '').toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function isCanonicalUuid(text: string): boolean {
  return normalizeUuid(text) === text;
}

export function generateUuid(): string {
  return randomUUID();
}
