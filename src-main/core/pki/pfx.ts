/**
 * The integrity layer of a PKCS#12 file (RFC 7292, password integrity mode), checked before
 * node-forge sees any bag.
 *
 * node-forge verifies a PFX MAC only when one is present, so a file without one is read as if it
 * were intact: an attacker can keep a victim's encrypted key, put in their own CA and a
 * certificate for the victim's public key, drop the MAC, and the bundle opens. Here the MAC is
 * mandatory and verified over the authSafe bytes, and forge is then handed a PFX rebuilt from
 * exactly those bytes (without the MAC, which we already checked), so no bag can come from
 * anywhere the MAC does not cover.
 *
 * Wrong password or tampered file? Both make the MAC fail, because the MAC key is derived from the
 * password. They are told apart by the private key: if the bundle's PBES2-shrouded key decrypts
 * and parses as a private key under this password, the password is right (a wrong password passes
 * the CBC padding check with p ~ 1/256 and then yields DER that parses as a private key with
 * negligible probability), so the MAC failed because the file was changed: BundleIntegrity.
 * Otherwise: WrongPassword. Either way the file is refused. A file without a MAC, or with data
 * outside the MAC, is BundleIntegrity whatever the password.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import forge from 'node-forge';
import { PkiError } from './errors.js';

type Asn1 = forge.asn1.Asn1;
const { Class, Type } = forge.asn1;

/** The cost bounds writeBundle accepts; a file asking for more is refused before any work. */
export interface PfxLimits {
  maxIterations: number;
}

const MAC_DIGESTS: Record<string, { node: string; forge: () => forge.md.MessageDigest; bytes: number }> = {
  [forge.pki.oids.sha1 as string]: { node: 'sha1', forge: () => forge.md.sha1.create(), bytes: 20 },
  [forge.pki.oids.sha256 as string]: { node: 'sha256', forge: () => forge.md.sha256.create(), bytes: 32 },
};

function integrity(message: string): PkiError {
  return new PkiError('BundleIntegrity', `this bundle failed its integrity check: ${message}`);
}

function corrupt(): PkiError {
  return new PkiError('CorruptBundle', 'this file is not a readable certificate bundle (.p12)');
}

function isUniversal(node: Asn1 | undefined, type: forge.asn1.Type): node is Asn1 {
  return node !== undefined && node.tagClass === Class.UNIVERSAL && node.type === type;
}

function children(node: Asn1 | undefined, type: forge.asn1.Type = Type.SEQUENCE): Asn1[] | undefined {
  return isUniversal(node, type) && node.constructed && Array.isArray(node.value) ? node.value : undefined;
}

function bytesOf(node: Asn1 | undefined, type: forge.asn1.Type): string | undefined {
  return isUniversal(node, type) && typeof node.value === 'string' ? node.value : undefined;
}

/** An OCTET STRING's content; BER allows it in chunks (one level, as forge reads it). */
function octets(node: Asn1 | undefined): string | undefined {
  if (!isUniversal(node, Type.OCTETSTRING)) return undefined;
  if (typeof node.value === 'string') return node.value;
  let out = '';
  for (const chunk of node.value) {
    const part = bytesOf(chunk, Type.OCTETSTRING);
    if (part === undefined) return undefined;
    out += part;
  }
  return out;
}

function oidOf(node: Asn1 | undefined): string | undefined {
  const der = bytesOf(node, Type.OID);
  return der === undefined ? undefined : forge.asn1.derToOid(der);
}

/** A small non-negative INTEGER, or undefined if it is not one (or does not fit a double exactly). */
function smallInteger(node: Asn1 | undefined): number | undefined {
  const der = bytesOf(node, Type.INTEGER);
  if (der === undefined || der.length === 0 || der.length > 6 || der.charCodeAt(0) & 0x80) return undefined;
  let n = 0;
  for (let i = 0; i < der.length; i++) n = n * 256 + der.charCodeAt(i);
  return n;
}

/** `[0] EXPLICIT` content of a ContentInfo or SafeBag. */
function explicitZero(node: Asn1 | undefined): Asn1 | undefined {
  if (node?.tagClass !== Class.CONTEXT_SPECIFIC || node.type !== 0 || !Array.isArray(node.value)) {
    return undefined;
  }
  return node.value.length === 1 ? node.value[0] : undefined;
}

interface ParsedPfx {
  version: Asn1;
  authSafe: string;
  mac?: { digestOid: string; digest: string; salt: string; iterations: number };
}

function parsePfx(data: Uint8Array): ParsedPfx {
  let root: Asn1;
  try {
    // Strict DER, and every byte must belong to the PFX: nothing may trail it.
    root = forge.asn1.fromDer(forge.util.createBuffer(Buffer.from(data).toString('binary')), true);
  } catch {
    throw corrupt();
  }
  const pfx = children(root);
  const [version, authSafeInfo, macData, ...rest] = pfx ?? [];
  const info = children(authSafeInfo);
  if (!pfx || smallInteger(version) !== 3 || !version || !info) throw corrupt();
  if (oidOf(info[0]) !== forge.pki.oids.data) {
    throw integrity('it is not in password integrity mode');
  }
  const authSafe = octets(explicitZero(info[1]));
  if (authSafe === undefined || info.length !== 2) throw corrupt();
  if (rest.length > 0) throw integrity('it carries data outside its integrity MAC');
  if (macData === undefined) return { version, authSafe };

  const [digestInfo, salt, iterations, ...macRest] = children(macData) ?? [];
  const [algorithm, digest, ...digestRest] = children(digestInfo) ?? [];
  const digestOid = oidOf(children(algorithm)?.[0]);
  const macSalt = bytesOf(salt, Type.OCTETSTRING);
  const macDigest = bytesOf(digest, Type.OCTETSTRING);
  // RFC 7292: iterations DEFAULT 1.
  const count = iterations === undefined ? 1 : smallInteger(iterations);
  if (
    digestOid === undefined ||
    macSalt === undefined ||
    macDigest === undefined ||
    count === undefined ||
    macRest.length > 0 ||
    digestRest.length > 0
  ) {
    throw integrity('its MAC is unreadable');
  }
  return { version, authSafe, mac: { digestOid, digest: macDigest, salt: macSalt, iterations: count } };
}

/** The iteration count a PBE AlgorithmIdentifier asks for (PBES2/PBKDF2 or a PKCS#12 PBE). */
function pbeIterations(algorithm: Asn1 | undefined): number | undefined {
  const [oid, params] = children(algorithm) ?? [];
  if (oidOf(oid) === forge.pki.oids.pkcs5PBES2) {
    const kdf = children(children(params)?.[0]);
    return smallInteger(children(kdf?.[1])?.[1]);
  }
  return smallInteger(children(params)?.[1]);
}

/**
 * Whether `password` opens a PBES2-shrouded key bag among the authSafe's plain SafeContents
 * (where writeBundle and OpenSSL put the key). Bounded like the MAC: never a costly KDF on the
 * word of an unauthenticated file.
 */
function passwordOpensKey(authSafe: string, password: string, limits: PfxLimits): boolean {
  try {
    for (const info of children(forge.asn1.fromDer(authSafe, true)) ?? []) {
      const parts = children(info);
      if (oidOf(parts?.[0]) !== forge.pki.oids.data) continue;
      const contents = octets(explicitZero(parts?.[1]));
      if (contents === undefined) continue;
      for (const bag of children(forge.asn1.fromDer(contents, true)) ?? []) {
        const [bagId, bagValue] = children(bag) ?? [];
        if (oidOf(bagId) !== forge.pki.oids.pkcs8ShroudedKeyBag) continue;
        const shrouded = explicitZero(bagValue);
        const [algorithm] = children(shrouded) ?? [];
        if (oidOf(children(algorithm)?.[0]) !== forge.pki.oids.pkcs5PBES2) continue;
        const count = pbeIterations(algorithm);
        if (!shrouded || count === undefined || count > limits.maxIterations) continue;
        const keyInfo = forge.pki.decryptPrivateKeyInfo(shrouded, password) as Asn1 | null;
        if (keyInfo && forge.pki.privateKeyFromAsn1(keyInfo)) return true;
      }
    }
  } catch {
    // Unreadable structure or a key that does not parse: this password does not open it.
  }
  return false;
}

function verifyMac(parsed: ParsedPfx, password: string, limits: PfxLimits): boolean {
  const mac = parsed.mac;
  if (!mac) throw integrity('it has no integrity MAC');
  const digest = MAC_DIGESTS[mac.digestOid];
  if (!digest) throw integrity('its MAC uses an unsupported digest');
  if (mac.iterations < 1 || mac.iterations > limits.maxIterations) {
    throw integrity(`its MAC asks for ${mac.iterations} iterations (at most ${limits.maxIterations})`);
  }
  if (mac.salt.length === 0) throw integrity('its MAC has no salt');
  const key = forge.pkcs12.generateKey(
    password,
    forge.util.createBuffer(mac.salt),
    3, // RFC 7292 B.3: ID 3 = MAC key material
    mac.iterations,
    digest.bytes,
    digest.forge(),
  );
  const expected = createHmac(digest.node, Buffer.from(key.getBytes(), 'binary'))
    .update(Buffer.from(parsed.authSafe, 'binary'))
    .digest();
  const actual = Buffer.from(mac.digest, 'binary');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/**
 * Decodes a PKCS#12 file whose MAC verifies under `password`. Throws CorruptBundle for what is
 * not a PFX, BundleIntegrity for a missing, unsupported or failing MAC when the password is right,
 * and WrongPassword otherwise. The result's bags all come from the MAC-covered authSafe.
 */
export function openPfx(data: Uint8Array, password: string, limits: PfxLimits): forge.pkcs12.Pkcs12Pfx {
  const parsed = parsePfx(data);
  if (!verifyMac(parsed, password, limits)) {
    if (passwordOpensKey(parsed.authSafe, password, limits)) {
      throw integrity('its MAC does not match although the password opens its key; it was changed');
    }
    throw new PkiError('WrongPassword', 'wrong password for this certificate bundle');
  }
  // The same authSafe bytes, as one primitive OCTET STRING, and no macData: forge decodes exactly
  // what was verified and has no MAC of its own to (not) check.
  const rebuilt = forge.asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
    parsed.version,
    forge.asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
      forge.asn1.create(
        Class.UNIVERSAL,
        Type.OID,
        false,
        forge.asn1.oidToDer(forge.pki.oids.data as string).getBytes(),
      ),
      forge.asn1.create(Class.CONTEXT_SPECIFIC, 0, true, [
        forge.asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, parsed.authSafe),
      ]),
    ]),
  ]);
  try {
    return forge.pkcs12.pkcs12FromAsn1(rebuilt, true, password);
  } catch {
    // The MAC verified, so the password is right: a key or safe that does not open with it, or a
    // bag forge cannot read, is a malformed bundle.
    throw corrupt();
  }
}
