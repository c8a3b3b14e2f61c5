// Migration URIs and listen addresses in QEMU's syntax: tcp:HOST:PORT (libvirt's
// tcp://HOST:PORT accepted too), unix:PATH and fd:NAME. IPv6 addresses travel in
// brackets (tcp:[::1]:49152, tcp:[fe80::1%eth0]:49152); an unbracketed one is
// refused because its last colon cannot be told from the port separator.
// exec: is refused outright: QEMU would hand it to /bin/sh.
import { isIPv4, isIPv6 } from 'node:net';
import type { ApplicationFailure } from '@temporalio/common';
import { ErrorType, vmError } from '../common/errors.js';

export type MigrationUri = { transport: 'tcp'; host: string; port: number } | { transport: 'unix'; path: string } | { transport: 'fd'; name: string };

/** Longest URI accepted, in characters. */
export const MAX_MIGRATION_URI_LENGTH = 1024;
/** sun_path holds 108 bytes including the terminating NUL. */
export const MAX_UNIX_PATH_BYTES = 107;
const MAX_FD_NAME_LENGTH = 64;
const MAX_HOSTNAME_LENGTH = 253;

function invalid(message: string, input: string, details?: Record<string, unknown>): ApplicationFailure {
  const shown = input.length > 80 ? `${input.slice(0, 80)}…` : input;
  // Control characters are escaped so the message itself stays one clean line.
  const safe = JSON.stringify(shown);
  return vmError(ErrorType.OperationInvalid, `invalid migration URI ${safe}: ${message}`, { uri: shown, ...details });
}

function invalidAddress(message: string, host: string, details?: Record<string, unknown>): ApplicationFailure {
  return vmError(ErrorType.OperationInvalid, `invalid listen address ${JSON.stringify(host.slice(0, 80))}: ${message}`, {
    host: host.slice(0, 80),
    ...details,
  });
}

// C0 controls, DEL and the C1 range; no whitespace is ever meaningful in a URI either.
const CONTROL_OR_SPACE = /[\u0000-\u0020\u007F-\u009F]/;

/** A port in 1..65535 written as plain decimal digits. */
function parsePort(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

function isValidPort(port: unknown): port is number {
  return typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535;
}

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
// Zone (scope) identifiers are interface names (at most 15 characters on Linux) or numbers.
const ZONE = /^[A-Za-z0-9_.-]{1,15}$/;

/** Why `host` is not an IPv4 address, a bracket-less IPv6 address (zone allowed) or a host name; undefined when it is fine. */
function hostProblem(host: string): string | undefined {
  if (host === '') return 'empty host';
  if (host.includes(':')) {
    const pct = host.indexOf('%');
    const addr = pct === -1 ? host : host.slice(0, pct);
    const zone = pct === -1 ? undefined : host.slice(pct + 1);
    if (!isIPv6(addr)) return `'${addr}' is not an IPv6 address`;
    if (zone !== undefined && !ZONE.test(zone)) return `invalid IPv6 zone '${zone}'`;
    return undefined;
  }
  if (/^[0-9.]+$/.test(host)) {
    // All digits and dots: only a dotted quad makes sense, and no octal-looking leading zeros.
    if (!isIPv4(host) || host.split('.').some((o) => o.length > 1 && o.startsWith('0'))) return `'${host}' is not an IPv4 address`;
    return undefined;
  }
  if (host.length > MAX_HOSTNAME_LENGTH) return `host name longer than ${MAX_HOSTNAME_LENGTH} characters`;
  const labels = host.split('.');
  if (!labels.every((l) => LABEL.test(l))) return `'${host}' is not a valid host name`;
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) return `'${host}' is not a valid host name (numeric top-level label)`;
  return undefined;
}

function parseTcp(rest: string, input: string): MigrationUri {
  let host: string;
  let portText: string;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close === -1) throw invalid("missing ']' after the IPv6 address", input);
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after === '') throw invalid('missing port', input);
    if (!after.startsWith(':')) throw invalid(`unexpected '${after.slice(0, 20)}' after ']'`, input);
    portText = after.slice(1);
    if (host === '') throw invalid('empty host', input);
    if (!host.includes(':')) throw invalid(`'${host}' in brackets is not an IPv6 address`, input);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon === -1) throw invalid('missing port (expected HOST:PORT)', input);
    host = rest.slice(0, colon);
    portText = rest.slice(colon + 1);
    if (host.includes(':')) throw invalid('an IPv6 address must be written in brackets, e.g. tcp:[::1]:49152', input);
    if (host.includes('[') || host.includes(']')) throw invalid('misplaced bracket', input);
  }
  if (portText === '') throw invalid('missing port', input);
  const port = parsePort(portText);
  if (port === undefined) throw invalid(`port '${portText.slice(0, 20)}' is not a number in 1..65535`, input);
  const problem = hostProblem(host);
  if (problem !== undefined) throw invalid(problem, input);
  return { transport: 'tcp', host, port };
}

function checkUnixPath(path: string, fail: (msg: string) => ApplicationFailure): string {
  if (path === '') throw fail('empty socket path');
  if (!path.startsWith('/')) throw fail(`socket path '${path}' is not absolute`);
  if (Buffer.byteLength(path, 'utf8') > MAX_UNIX_PATH_BYTES) throw fail(`socket path longer than ${MAX_UNIX_PATH_BYTES} bytes (sun_path limit)`);
  if (path.split('/').includes('..')) throw fail("socket path must not contain '..'");
  return path;
}

function checkFdName(name: string, fail: (msg: string) => ApplicationFailure): string {
  if (name === '') throw fail('empty descriptor name');
  if (name.length > MAX_FD_NAME_LENGTH || !/^[A-Za-z0-9_.-]+$/.test(name)) {
    throw fail(`descriptor name '${name.slice(0, 40)}' must be 1..${MAX_FD_NAME_LENGTH} of A-Z a-z 0-9 _ . -`);
  }
  return name;
}

export function parseMigrationUri(s: string): MigrationUri {
  if (typeof s !== 'string') throw vmError(ErrorType.OperationInvalid, `migration URI must be a string, got ${s === null ? 'null' : typeof s}`);
  if (s.length > MAX_MIGRATION_URI_LENGTH) throw invalid(`longer than ${MAX_MIGRATION_URI_LENGTH} characters`, s, { length: s.length });
  if (s === '') throw invalid('empty', s);
  const ctl = CONTROL_OR_SPACE.exec(s);
  if (ctl) throw invalid(`control character or space U+${ctl[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')} at offset ${ctl.index}`, s);
  const colon = s.indexOf(':');
  const scheme = colon === -1 ? '' : s.slice(0, colon);
  const rest = colon === -1 ? '' : s.slice(colon + 1);
  switch (scheme) {
    case 'tcp':
      return parseTcp(rest.startsWith('//') ? rest.slice(2) : rest, s);
    case 'unix':
      return { transport: 'unix', path: checkUnixPath(rest, (m) => invalid(m, s)) };
    case 'fd':
      return { transport: 'fd', name: checkFdName(rest, (m) => invalid(m, s)) };
    case 'exec':
      throw invalid('exec: URIs are refused (QEMU would run them through a shell)', s);
    case '':
      throw invalid('missing transport (expected tcp:, unix: or fd:)', s);
    default:
      throw invalid(`unsupported transport '${scheme.slice(0, 20)}' (expected tcp:, unix: or fd:)`, s);
  }
}

/** `HOST:PORT` for QEMU and libvirt, IPv6 in brackets. The host may be a wildcard (0.0.0.0, ::). */
export function formatListenAddress(host: string, port: number): string {
  if (typeof host !== 'string') throw invalidAddress('host must be a string', String(host));
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const ctl = CONTROL_OR_SPACE.exec(bare);
  if (ctl) throw invalidAddress('control character or space in host', bare);
  const problem = hostProblem(bare);
  if (problem !== undefined) throw invalidAddress(problem, bare);
  if (!isValidPort(port)) throw invalidAddress(`port ${String(port)} is not an integer in 1..65535`, bare, { port });
  return bare.includes(':') ? `[${bare}]:${port}` : `${bare}:${port}`;
}

/** QEMU's syntax: tcp:HOST:PORT (IPv6 bracketed), unix:PATH, fd:NAME. Validates as parseMigrationUri does. */
export function formatMigrationUri(u: MigrationUri): string {
  const fail = (m: string): ApplicationFailure => vmError(ErrorType.OperationInvalid, `cannot format migration URI: ${m}`);
  switch (u.transport) {
    case 'tcp':
      return `tcp:${formatListenAddress(u.host, u.port)}`;
    case 'unix': {
      if (typeof u.path !== 'string' || CONTROL_OR_SPACE.test(u.path)) throw fail('socket path contains a control character or space');
      return `unix:${checkUnixPath(u.path, fail)}`;
    }
    case 'fd':
      return `fd:${checkFdName(String(u.name), fail)}`;
    default:
      throw fail(`unknown transport '${String((u as { transport: unknown }).transport)}'`);
  }
}
