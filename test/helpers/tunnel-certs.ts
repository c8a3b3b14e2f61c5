// Certificates for tunnelled migration tests, made with the machine's openssl
// (argument vectors, no shell): a cluster CA and per-host certificates whose CN
// and DNS subjectAltName are the host name, usable as TLS server and client.
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Ca {
  certFile: string;
  keyFile: string;
}

export interface HostCert {
  caFile: string;
  certFile: string;
  keyFile: string;
}

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr?.trim() || r.error?.message}`);
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function makeCa(dir: string, name: string): Ca {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  openssl([
    'req',
    '-x509',
    ...EC,
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  chmodSync(keyFile, 0o600);
  return { certFile, keyFile };
}

/** A certificate for `host` signed by `ca`; `trust` is the CA file the host itself trusts (default: `ca`). */
export function makeHostCert(dir: string, ca: Ca, host: string, trust: Ca = ca): HostCert {
  const keyFile = join(dir, `${host}.key`);
  const csr = join(dir, `${host}.csr`);
  const certFile = join(dir, `${host}.crt`);
  const ext = join(dir, `${host}.ext`);
  writeFileSync(ext, `subjectAltName=DNS:${host}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n`);
  openssl(['req', ...EC, '-keyout', keyFile, '-out', csr, '-subj', `/O=vmferry-tests/CN=${host}`]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', ext]);
  chmodSync(keyFile, 0o600);
  return { caFile: trust.certFile, certFile, keyFile };
}

export function tunnelEnv(listen: string, c: HostCert): Record<string, string> {
  return { VMFERRY_HOST_TUNNEL_LISTEN: listen, VMFERRY_HOST_TUNNEL_CA: c.caFile, VMFERRY_HOST_TUNNEL_CERT: c.certFile, VMFERRY_HOST_TUNNEL_KEY: c.keyFile };
}
