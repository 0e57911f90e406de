/**
 * The primitives on Node's built-in crypto (OpenSSL) against the same operations in node-forge
 * (pure JavaScript), measured in one run on one machine: the numbers behind DESIGN.md §4's
 * split (forge only for X.509/PKCS#12 building and parsing, native for every hot-path call).
 * Each pair is checked for interoperability before it is timed, so both sides do the same work.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import forge from 'node-forge';
import {
  aesGcmDecrypt,
  aesGcmEncrypt,
  generatePrekeyPair,
  hpkeOpen,
  hpkeSeal,
  oaepDecrypt,
  oaepEncrypt,
  openEnvelope,
  randomBytes,
  sealEnvelope,
  signPss,
  verifyPss,
} from '../../src-main/core/crypto/index.js';
import {
  DEFAULT_KDF_ITERATIONS,
  MIN_KDF_ITERATIONS,
  readBundle,
  writeBundle,
} from '../../src-main/core/pki/bundle.js';
import { createGroupCa, issueCertificate } from '../../src-main/core/pki/issue.js';
import { opsPerSecond, type BenchResult, type BenchSuite } from '../harness.js';

/** Native calls are fast and steady; forge's are slow, so they get a little longer for a stable count. */
const NATIVE_MS = 1000;
const FORGE_MS = 1500;
const MESSAGE = randomBytes(1024);
const AAD = Buffer.from('SecureChat-X/v1 bench aad');
const PASSWORD = 'benchmark password';
const HPKE_INFO = Buffer.from('SecureChat-X/v1 bench hpke info');

type ForgePrivate = forge.pki.rsa.PrivateKey;
type ForgePublic = forge.pki.rsa.PublicKey;

const bin = (b: Uint8Array): string => Buffer.from(b).toString('binary');
const buf = (s: string): Buffer => Buffer.from(s, 'binary');

function forgePss(): forge.pss.PSS {
  return forge.pss.create({
    md: forge.md.sha256.create(),
    mgf: forge.mgf.mgf1.create(forge.md.sha256.create()),
    saltLength: 32,
  });
}

function sha256(data: Uint8Array): forge.md.MessageDigest {
  const md = forge.md.sha256.create();
  md.update(bin(data));
  return md;
}

/** OAEP with SHA-256 for the hash and MGF1, as the native side uses. */
function oaepOptions(label?: Uint8Array): object {
  return {
    md: forge.md.sha256.create(),
    mgf1: { md: forge.md.sha256.create() },
    ...(label ? { label: bin(label) } : {}),
  };
}

const forgeCrypto = {
  sign: (key: ForgePrivate, data: Uint8Array): Buffer => buf(key.sign(sha256(data), forgePss())),
  verify: (key: ForgePublic, data: Uint8Array, sig: Uint8Array): boolean => {
    try {
      return key.verify(sha256(data).digest().bytes(), bin(sig), forgePss());
    } catch {
      return false;
    }
  },
  oaepEncrypt: (key: ForgePublic, pt: Uint8Array, label?: Uint8Array): Buffer =>
    buf(key.encrypt(bin(pt), 'RSA-OAEP', oaepOptions(label))),
  oaepDecrypt: (key: ForgePrivate, ct: Uint8Array, label?: Uint8Array): Buffer =>
    buf(key.decrypt(bin(ct), 'RSA-OAEP', oaepOptions(label))),
  gcmEncrypt: (key: Uint8Array, pt: Uint8Array, aad: Uint8Array): { iv: Buffer; ciphertext: Buffer } => {
    const iv = randomBytes(12);
    const c = forge.cipher.createCipher('AES-GCM', bin(key));
    c.start({ iv: bin(iv), additionalData: bin(aad), tagLength: 128 });
    c.update(forge.util.createBuffer(bin(pt)));
    c.finish();
    return { iv, ciphertext: Buffer.concat([buf(c.output.getBytes()), buf(c.mode.tag.getBytes())]) };
  },
  gcmDecrypt: (key: Uint8Array, iv: Uint8Array, ct: Uint8Array, aad: Uint8Array): Buffer => {
    const d = forge.cipher.createDecipher('AES-GCM', bin(key));
    const tag = ct.subarray(ct.length - 16);
    d.start({
      iv: bin(iv),
      additionalData: bin(aad),
      tagLength: 128,
      tag: forge.util.createBuffer(bin(tag)),
    });
    d.update(forge.util.createBuffer(bin(ct.subarray(0, ct.length - 16))));
    if (!d.finish()) throw new Error('forge AES-GCM authentication failed');
    return buf(d.output.getBytes());
  },
};

interface Pair {
  op: string;
  native: () => unknown;
  forge: () => unknown;
}

/** Pairs of equivalent operations; each is cross-checked (one side's output opened by the other) first. */
function makePairs(): Pair[] {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const nativePriv: KeyObject = privateKey;
  const nativePub = createPublicKey(privateKey);
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const forgePriv = forge.pki.privateKeyFromPem(pem) as ForgePrivate;
  const forgePub = forge.pki.setRsaPublicKey(forgePriv.n, forgePriv.e) as ForgePublic;
  const aesKey = randomBytes(32);
  const secret = randomBytes(32);

  const nativeSig = signPss(nativePriv, MESSAGE);
  const forgeSig = forgeCrypto.sign(forgePriv, MESSAGE);
  const nativeOaep = oaepEncrypt(nativePub, secret, AAD);
  const forgeOaep = forgeCrypto.oaepEncrypt(forgePub, secret, AAD);
  const nativeGcm = aesGcmEncrypt(aesKey, MESSAGE, AAD);
  const forgeGcm = forgeCrypto.gcmEncrypt(aesKey, MESSAGE, AAD);
  const check = (ok: boolean, what: string): void => {
    if (!ok) throw new Error(`crypto bench: native and forge disagree on ${what}`);
  };
  check(
    verifyPss(nativePub, MESSAGE, forgeSig) && forgeCrypto.verify(forgePub, MESSAGE, nativeSig),
    'RSA-PSS',
  );
  check(
    oaepDecrypt(nativePriv, forgeOaep, AAD).equals(secret) &&
      forgeCrypto.oaepDecrypt(forgePriv, nativeOaep, AAD).equals(secret),
    'RSA-OAEP',
  );
  check(
    aesGcmDecrypt(aesKey, forgeGcm.iv, forgeGcm.ciphertext, AAD).equals(MESSAGE) &&
      forgeCrypto.gcmDecrypt(aesKey, nativeGcm.iv, nativeGcm.ciphertext, AAD).equals(MESSAGE),
    'AES-256-GCM',
  );

  // The digital envelope as in KEY_DISTRIBUTION: a fresh AES key, OAEP-wrapped, GCM over the payload.
  const forgeSeal = (): { wrappedKey: Buffer; iv: Buffer; ciphertext: Buffer } => {
    const key = randomBytes(32);
    return {
      wrappedKey: forgeCrypto.oaepEncrypt(forgePub, key, AAD),
      ...forgeCrypto.gcmEncrypt(key, MESSAGE, AAD),
    };
  };
  const forgeEnvelope = forgeSeal();
  const nativeEnvelope = sealEnvelope(nativePub, MESSAGE, AAD);
  check(openEnvelope(nativePriv, forgeEnvelope, AAD).equals(MESSAGE), 'digital envelope');

  return [
    {
      op: 'sign',
      native: () => signPss(nativePriv, MESSAGE),
      forge: () => forgeCrypto.sign(forgePriv, MESSAGE),
    },
    {
      op: 'verify',
      native: () => verifyPss(nativePub, MESSAGE, nativeSig),
      forge: () => forgeCrypto.verify(forgePub, MESSAGE, nativeSig),
    },
    {
      op: 'oaep_encrypt',
      native: () => oaepEncrypt(nativePub, secret, AAD),
      forge: () => forgeCrypto.oaepEncrypt(forgePub, secret, AAD),
    },
    {
      op: 'oaep_decrypt',
      native: () => oaepDecrypt(nativePriv, nativeOaep, AAD),
      forge: () => forgeCrypto.oaepDecrypt(forgePriv, nativeOaep, AAD),
    },
    {
      op: 'gcm_1k',
      native: () => {
        const s = aesGcmEncrypt(aesKey, MESSAGE, AAD);
        return aesGcmDecrypt(aesKey, s.iv, s.ciphertext, AAD);
      },
      forge: () => {
        const s = forgeCrypto.gcmEncrypt(aesKey, MESSAGE, AAD);
        return forgeCrypto.gcmDecrypt(aesKey, s.iv, s.ciphertext, AAD);
      },
    },
    { op: 'envelope_seal', native: () => sealEnvelope(nativePub, MESSAGE, AAD), forge: forgeSeal },
    {
      op: 'envelope_open',
      native: () => openEnvelope(nativePriv, nativeEnvelope, AAD),
      forge: () => {
        const key = forgeCrypto.oaepDecrypt(forgePriv, nativeEnvelope.wrappedKey, AAD);
        return forgeCrypto.gcmDecrypt(key, nativeEnvelope.iv, nativeEnvelope.ciphertext, AAD);
      },
    },
  ];
}

/**
 * Reading a member bundle: natively OpenSSL parses it (TLS secure context), with forge it is
 * readBundle, what the app runs. The iteration count dominates both.
 */
function bundlePairs(): Pair[] {
  const ca = createGroupCa();
  const member = issueCertificate(ca, { name: 'bench', role: 'member' });
  return [
    { label: 'p12_read_10k', count: MIN_KDF_ITERATIONS },
    { label: 'p12_read_default', count: DEFAULT_KDF_ITERATIONS },
  ].map(({ label, count }) => {
    const p12 = writeBundle(member, ca.certificate, PASSWORD, { kdfIterations: count });
    return {
      op: label,
      native: () => createSecureContext({ pfx: p12, passphrase: PASSWORD }),
      forge: () => readBundle(p12, PASSWORD),
    };
  });
}

interface Single {
  op: string;
  run: () => unknown;
}

/**
 * HPKE to an X25519 prekey (DESIGN.md §10.8), the envelope that takes over from RSA-OAEP: ours on
 * Node's X25519, sealing the same 1 KiB as envelope_seal. No forge side (forge has no X25519 HPKE);
 * the round trip is checked before timing, as for the pairs.
 */
function hpkeOps(): Single[] {
  const recipient = generatePrekeyPair();
  const sealed = hpkeSeal(recipient.publicKey, HPKE_INFO, AAD, MESSAGE);
  if (!hpkeOpen(recipient.privateKey, sealed.enc, HPKE_INFO, AAD, sealed.ciphertext).equals(MESSAGE)) {
    throw new Error('crypto bench: HPKE does not round-trip');
  }
  return [
    { op: 'hpke_seal', run: () => hpkeSeal(recipient.publicKey, HPKE_INFO, AAD, MESSAGE) },
    {
      op: 'hpke_open',
      run: () => hpkeOpen(recipient.privateKey, sealed.enc, HPKE_INFO, AAD, sealed.ciphertext),
    },
  ];
}

export const cryptoSuite: BenchSuite = {
  name: 'crypto',
  description:
    'RSA-2048 / AES-256-GCM / PKCS#12: native (Node/OpenSSL) vs node-forge; HPKE X25519 (native only), ops per second',
  async run(): Promise<BenchResult[]> {
    const results: BenchResult[] = [];
    for (const pair of [...makePairs(), ...bundlePairs()]) {
      const native = await opsPerSecond(pair.native, NATIVE_MS);
      const viaForge = await opsPerSecond(pair.forge, FORGE_MS);
      results.push(
        { name: `crypto.native.${pair.op}_ops_per_s`, value: native, unit: 'ops/s' },
        { name: `crypto.forge.${pair.op}_ops_per_s`, value: viaForge, unit: 'ops/s' },
        { name: `crypto.ratio.${pair.op}`, value: native / viaForge, unit: 'x (native/forge)' },
      );
    }
    for (const single of hpkeOps()) {
      results.push({
        name: `crypto.${single.op}_ops_per_s`,
        value: await opsPerSecond(single.run, NATIVE_MS),
        unit: 'ops/s',
      });
    }
    return results;
  },
};
