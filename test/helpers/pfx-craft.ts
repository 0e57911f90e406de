/**
 * Crafting PKCS#12 files the way an attacker would, from outside the code under test: node-forge's
 * ASN.1 layer only (never readBundle or pfx.ts), so the tests do not share a parser with what they
 * attack. A PFX is SEQUENCE { version 3, authSafe ContentInfo(data), macData OPTIONAL }; the
 * authSafe is a SEQUENCE OF ContentInfo, each holding a SafeContents (SEQUENCE OF SafeBag).
 */
import forge from 'node-forge';
import type { Credential } from '../../src-main/core/pki/index.js';

type Asn1 = forge.asn1.Asn1;
const { asn1, pki } = forge;
const U = asn1.Class.UNIVERSAL;
const T = asn1.Type;

const seq = (items: Asn1[]): Asn1 => asn1.create(U, T.SEQUENCE, true, items);
const oid = (o: string): Asn1 => asn1.create(U, T.OID, false, asn1.oidToDer(o).getBytes());
const octet = (bytes: string): Asn1 => asn1.create(U, T.OCTETSTRING, false, bytes);
const explicit0 = (inner: Asn1): Asn1 => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [inner]);
const der = (node: Asn1): string => asn1.toDer(node).getBytes();

export function toBuffer(node: Asn1): Buffer {
  return Buffer.from(der(node), 'binary');
}

export function parseDer(bytes: Uint8Array): Asn1 {
  return asn1.fromDer(forge.util.createBuffer(Buffer.from(bytes).toString('binary')));
}

const list = (node: Asn1 | undefined): Asn1[] => {
  if (!node || !Array.isArray(node.value)) throw new Error('not a constructed ASN.1 value');
  return node.value;
};
const str = (node: Asn1 | undefined): string => {
  if (!node || typeof node.value !== 'string') throw new Error('not a primitive ASN.1 value');
  return node.value;
};

/** The three parts of a PFX: version, authSafe ContentInfo and macData (if any). */
export function pfxParts(bytes: Uint8Array): { version: Asn1; authSafeInfo: Asn1; macData?: Asn1 } {
  const [version, authSafeInfo, macData] = list(parseDer(bytes));
  if (!version || !authSafeInfo) throw new Error('not a PFX');
  return macData ? { version, authSafeInfo, macData } : { version, authSafeInfo };
}

/** The ContentInfos of a PFX's authSafe. */
export function authSafeOf(bytes: Uint8Array): Asn1[] {
  const content = str(list(list(pfxParts(bytes).authSafeInfo)[1])[0]);
  return list(asn1.fromDer(content));
}

/** Every SafeBag in the unencrypted SafeContents of a PFX (where forge and OpenSSL put the key). */
export function plainBagsOf(bytes: Uint8Array): Asn1[] {
  return authSafeOf(bytes).flatMap((info) => {
    const [type, content] = list(info);
    if (asn1.derToOid(str(type)) !== pki.oids.data) return [];
    return list(asn1.fromDer(str(list(content)[0])));
  });
}

export function bagType(bag: Asn1): string {
  return asn1.derToOid(str(list(bag)[0]));
}

/** The victim's PBES2-shrouded key bag, exactly as it is in their bundle. */
export function shroudedKeyBagOf(bytes: Uint8Array): Asn1 {
  const bag = plainBagsOf(bytes).find((b) => bagType(b) === pki.oids.pkcs8ShroudedKeyBag);
  if (!bag) throw new Error('no shrouded key bag');
  return bag;
}

export function certBag(pem: string): Asn1 {
  const certDer = der(pki.certificateToAsn1(pki.certificateFromPem(pem)));
  return seq([
    oid(pki.oids.certBag as string),
    explicit0(seq([oid(pki.oids.x509Certificate as string), explicit0(octet(certDer))])),
  ]);
}

/** A keyBag: the PKCS#8 PrivateKeyInfo in the clear. */
export function plainKeyBag(privateKeyPem: string): Asn1 {
  const info = pki.wrapRsaPrivateKey(pki.privateKeyToAsn1(pki.privateKeyFromPem(privateKeyPem)));
  return seq([oid(pki.oids.keyBag as string), explicit0(info)]);
}

/** An unencrypted ContentInfo(data) holding these bags. */
export function dataSafe(bags: Asn1[]): Asn1 {
  return seq([oid(pki.oids.data as string), explicit0(octet(der(seq(bags))))]);
}

export interface MacSpec {
  password: string;
  iterations?: number;
}

/** An HMAC-SHA1 MacData over `authSafe` computed with the PKCS#12 KDF, as RFC 7292 specifies. */
export function macDataFor(authSafe: string, spec: MacSpec): Asn1 {
  const salt = forge.random.getBytesSync(8);
  const iterations = spec.iterations ?? 2048;
  const key = forge.pkcs12.generateKey(
    spec.password,
    forge.util.createBuffer(salt),
    3,
    iterations,
    20,
    forge.md.sha1.create(),
  );
  const hmac = forge.hmac.create();
  hmac.start(forge.md.sha1.create(), key);
  hmac.update(authSafe);
  return seq([
    seq([
      seq([oid(pki.oids.sha1 as string), asn1.create(U, T.NULL, false, '')]),
      octet(hmac.digest().getBytes()),
    ]),
    octet(salt),
    asn1.create(U, T.INTEGER, false, asn1.integerToDer(iterations).getBytes()),
  ]);
}

/**
 * A PFX from these authSafe ContentInfos: with a MAC computed under `mac.password`, with a given
 * macData as is (e.g. one copied from another file), or with none. `trailing` elements are put
 * after the macData, outside anything the MAC covers.
 */
export function buildPfx(
  contentInfos: Asn1[],
  options: { mac?: MacSpec; macData?: Asn1; trailing?: Asn1[] } = {},
): Buffer {
  const authSafe = der(seq(contentInfos));
  const macData = options.macData ?? (options.mac ? macDataFor(authSafe, options.mac) : undefined);
  return toBuffer(
    seq([
      asn1.create(U, T.INTEGER, false, asn1.integerToDer(3).getBytes()),
      seq([oid(pki.oids.data as string), explicit0(octet(authSafe))]),
      ...(macData ? [macData] : []),
      ...(options.trailing ?? []),
    ]),
  );
}

/** The same file with one byte of its MAC digest flipped. */
export function withFlippedMac(bytes: Uint8Array): Buffer {
  const { version, authSafeInfo, macData } = pfxParts(bytes);
  if (!macData) throw new Error('no MAC to flip');
  const digest = list(list(macData)[0])[1];
  if (!digest || typeof digest.value !== 'string') throw new Error('unexpected MacData');
  const d = digest.value;
  digest.value = d.slice(0, 3) + String.fromCharCode(d.charCodeAt(3) ^ 0x01) + d.slice(4);
  return toBuffer(seq([version, authSafeInfo, macData]));
}

/** The same file with its MAC's iteration count replaced (the digest is left as it was). */
export function withMacIterations(bytes: Uint8Array, iterations: number): Buffer {
  const { version, authSafeInfo, macData } = pfxParts(bytes);
  if (!macData) throw new Error('no MAC');
  const [digestInfo, salt] = list(macData);
  if (!digestInfo || !salt) throw new Error('unexpected MacData');
  const count = asn1.create(U, T.INTEGER, false, asn1.integerToDer(iterations).getBytes());
  return toBuffer(seq([version, authSafeInfo, seq([digestInfo, salt, count])]));
}

/** The same file with its macData taken off; nothing else changed. */
export function withoutMac(bytes: Uint8Array): Buffer {
  const { version, authSafeInfo } = pfxParts(bytes);
  return toBuffer(seq([version, authSafeInfo]));
}

/**
 * A member certificate (the extensions issueCertificate writes) for `publicKeyPem`, signed by `ca`
 * with forge: what an attacker with their own CA issues for the victim's public key.
 */
export function issueForKey(
  ca: Credential,
  name: string,
  publicKeyPem: string,
  role: 'member' | 'relay' = 'member',
): string {
  const caCert = pki.certificateFromPem(ca.certificate.pem);
  const cert = pki.createCertificate();
  cert.publicKey = pki.publicKeyFromPem(publicKeyPem);
  cert.serialNumber = '0a1b2c3d';
  cert.validity.notBefore = new Date(Date.now() - 3_600_000);
  cert.validity.notAfter = new Date(Date.now() + 30 * 86_400_000);
  cert.setSubject([{ name: 'commonName', value: name }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', clientAuth: role === 'member', serverAuth: role === 'relay' },
  ]);
  cert.sign(pki.privateKeyFromPem(ca.privateKeyPem), forge.md.sha256.create());
  return pki.certificateToPem(cert);
}

/**
 * The reported attack: the victim's own shrouded key bag (the attacker cannot open it and does not
 * need to), the attacker's CA, an attacker-issued certificate for the victim's public key, no MAC.
 */
export function swappedCaBundle(
  victimBundle: Uint8Array,
  victimPublicKeyPem: string,
  attackerCa: Credential,
  name: string,
  role: 'member' | 'relay' = 'member',
): Buffer {
  return buildPfx([
    dataSafe([
      certBag(issueForKey(attackerCa, name, victimPublicKeyPem, role)),
      certBag(attackerCa.certificate.pem),
    ]),
    dataSafe([shroudedKeyBagOf(victimBundle)]),
  ]);
}
