// QEMU's own TLS for a migration stream (libvirt's --tls, and the tunnel's data
// path): the host's cluster certificate goes into a tls-creds-x509 object, the
// source pins the destination by host name (tls-hostname) and the destination
// pins the source by certificate subject (tls-authz). QEMU reads its
// credentials from a directory with fixed file names, so each setup writes one
// in the run directory, labelled for the domain, and removes it as soon as
// QEMU has loaded the files: the private key does not stay on disk twice.
import { X509Certificate, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorType, isVmError, vmError } from '../../common/errors.js';
import type { HostRuntime } from '../host-runtime.js';
import type { RunningDomain } from '../running-domain.js';
import type { SecurityContext } from '../../security/index.js';
import type { QmpClient } from '../../qemu/qmp-client.js';
import { setTlsParameters } from '../../qemu/migration-params.js';
import type { TunnelTls } from '../../migration/tunnel/tls.js';

export const CREDS_ID = 'vmf-migration-tls';
/**
 * Without dh-params.pem QEMU's server side generates 2048-bit DH parameters at
 * every object-add (about 300 ms of each TLS Prepare, measured here). TLS 1.3
 * key exchange is ECDHE, so the standard RFC 7919 ffdhe2048 group is only
 * there to skip that.
 */
const FFDHE2048_PEM = `-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
`;
export const AUTHZ_ID = 'vmf-migration-authz';

export type TlsEndpoint =
  /** The source: presents its certificate and accepts only a server certificate for `peerHost`. */
  | { role: 'client'; peerHost: string }
  /** The destination: accepts only a client certificate whose subject is `peerIdentity`. */
  | { role: 'server'; peerIdentity: string };

/** Subject attributes GnuTLS and Node name the same way; anything else is refused rather than guessed. */
const KNOWN_ATTRS = new Set(['CN', 'O', 'OU', 'C', 'L', 'ST', 'DC']);
const PLAIN_VALUE = /^[A-Za-z0-9 ._@*-]+$/;

/**
 * The certificate's subject as QEMU's tls-authz compares it: GnuTLS's
 * gnutls_x509_crt_get_dn, RDNs in the certificate's own order (checked against
 * QEMU 7.2: "O=x,CN=host", not RFC 4514's reversed order). Subjects that
 * would need escaping or carry multi-valued RDNs are refused: a pin that
 * silently never matches would fail every migration with a vague TLS error.
 */
export function tlsIdentity(certPem: Buffer | string): string {
  let subject: string;
  try {
    subject = new X509Certificate(certPem).subject;
  } catch (err) {
    throw vmError(ErrorType.ConfigUnsupported, `the host certificate cannot be read: ${(err as Error).message}`);
  }
  const rdns = subject.split('\n').filter((l) => l.length > 0);
  for (const rdn of rdns) {
    const eq = rdn.indexOf('=');
    const attr = rdn.slice(0, eq);
    const value = rdn.slice(eq + 1);
    if (eq <= 0 || !KNOWN_ATTRS.has(attr) || !PLAIN_VALUE.test(value) || value.startsWith(' ') || value.endsWith(' ')) {
      throw vmError(
        ErrorType.ConfigUnsupported,
        `the host certificate's subject ${JSON.stringify(subject.replace(/\n/g, '/'))} cannot be pinned for QEMU's TLS (use CN, O, OU, C, L, ST or DC with plain values)`,
      );
    }
  }
  return rdns.join(',');
}

async function objectDel(qmp: QmpClient, id: string): Promise<void> {
  await qmp.execute('object-del', { id }).catch((err: unknown) => {
    if (!(isVmError(err) && /not found|doesn't exist|does not exist/i.test(err.message))) throw err;
  });
}

/** Writes the credential directory QEMU expects, labelled for the domain; the caller removes it with `dropCredsDir`. */
async function writeCredsDir(rt: HostRuntime, tls: TunnelTls, sctx: SecurityContext): Promise<{ dir: string; labelled: string[] }> {
  const dir = join(rt.config.runDir, `tls-${randomBytes(6).toString('hex')}`);
  mkdirSync(dir, { mode: 0o700 });
  const files: Record<string, Buffer> = {
    'ca-cert.pem': tls.ca,
    'server-cert.pem': tls.cert,
    'server-key.pem': tls.key,
    'client-cert.pem': tls.cert,
    'client-key.pem': tls.key,
    'dh-params.pem': Buffer.from(FFDHE2048_PEM),
  };
  const labelled: string[] = [];
  try {
    for (const [file, data] of Object.entries(files)) writeFileSync(join(dir, file), data, { mode: 0o600 });
    for (const p of [dir, ...Object.keys(files).map((f) => join(dir, f))]) {
      await rt.security.labelPath(p, sctx);
      labelled.push(p);
    }
    return { dir, labelled };
  } catch (err) {
    await dropCredsDir(rt, { dir, labelled }, sctx);
    throw err;
  }
}

async function dropCredsDir(rt: HostRuntime, c: { dir: string; labelled: string[] }, sctx: SecurityContext): Promise<void> {
  for (const p of c.labelled.reverse()) {
    await rt.security
      .restorePath(p, sctx)
      .catch((err: unknown) => rt.log.warn({ path: p, err: String(err) }, 'restoring the label of a TLS credential file failed'));
  }
  rmSync(c.dir, { recursive: true, force: true });
}

/**
 * Turns QEMU's migration TLS on for the next `migrate` / `migrate-incoming`.
 * Repeatable: a retried step replaces what an earlier attempt added.
 */
export async function enableMigrationTls(rt: HostRuntime, dom: RunningDomain, tls: TunnelTls, end: TlsEndpoint, sctx: SecurityContext): Promise<void> {
  const qmp = dom.qmp;
  await disableMigrationTls(qmp);
  const creds = await writeCredsDir(rt, tls, sctx);
  try {
    await qmp.execute('object-add', { 'qom-type': 'tls-creds-x509', id: CREDS_ID, dir: creds.dir, endpoint: end.role, 'verify-peer': true });
  } catch (err) {
    throw vmError(ErrorType.ConfigUnsupported, `QEMU refused this host's TLS certificates for migration: ${(err as Error).message}`, { domain: dom.name });
  } finally {
    await dropCredsDir(rt, creds, sctx);
  }
  if (end.role === 'server') {
    await qmp.execute('object-add', { 'qom-type': 'authz-simple', id: AUTHZ_ID, identity: end.peerIdentity });
    await setTlsParameters(qmp, { creds: CREDS_ID, hostname: '', authz: AUTHZ_ID });
  } else {
    await setTlsParameters(qmp, { creds: CREDS_ID, hostname: end.peerHost, authz: '' });
  }
  rt.log.info({ domain: dom.name, role: end.role, peer: end.role === 'server' ? end.peerIdentity : end.peerHost }, 'QEMU migration TLS on');
}

/** Back to a stream in clear (the next migration decides again), and QEMU's copy of the key dropped. */
export async function disableMigrationTls(qmp: QmpClient): Promise<void> {
  await setTlsParameters(qmp, { creds: '', hostname: '', authz: '' });
  await objectDel(qmp, AUTHZ_ID);
  await objectDel(qmp, CREDS_ID);
}
