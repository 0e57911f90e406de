/**
 * The v1 envelope, the payload of one frame. Binary header, then body, then signature:
 *
 *   u8 version | u8 type | u8 senderKind | u16 senderLen | sender
 *   | u8 targetLen | target (identity, ASCII; empty = the relay or every member)
 *   | u32 bodyLen | body (UTF-8 JSON) | u16 sigLen | signature (RSA-PSS-SHA256)
 *
 * The signature covers SIGNATURE_LABEL followed by every byte before the signature, exactly as
 * transmitted. A relay reads the routing header with readHeader() without touching the body.
 */
import type { KeyObject } from 'node:crypto';
import { verifyPss } from '../crypto/primitives.js';
import { isValidIdentityName } from '../pki/identity-name.js';
import { ProtocolError } from './errors.js';
import { fastEncryptedText } from './fast-bodies.js';
import { decodeJsonBody, encodeJsonBody } from './json-body.js';
import { MESSAGE_TYPES, messageTypeOf, type MessageType } from './message-types.js';
import { BODY_SCHEMAS, LIMITS, type BodyOf } from './schemas.js';

export const PROTOCOL_VERSION = 1;
export const SIGNATURE_LABEL = Buffer.from('SecureChat-X/v1 envelope\0', 'latin1');
const MAX_SIGNATURE_BYTES = 1024;
const FINGERPRINT_BYTES = 32;

export type SenderRef = { kind: 'certificate'; der: Buffer } | { kind: 'fingerprint'; fingerprint: Buffer };
const SENDER_KIND = { certificate: 1, fingerprint: 2 } as const;

export interface EnvelopeHeader {
  version: number;
  type: MessageType;
  sender: SenderRef;
  /** The member a targeted frame is routed to; empty for the relay or every member. */
  target: string;
  body: Buffer;
  /** Everything the signature covers after the label. */
  signed: Buffer;
  signature: Buffer;
}

/**
 * Parses the header and locates body and signature, checking every length against the frame.
 * Cheap and allocation-light: body and signature are views of the frame.
 */
export function readHeader(frame: Buffer): EnvelopeHeader {
  const bad = (why: string): never => {
    throw new ProtocolError('BadFrame', `malformed envelope: ${why}`);
  };
  if (frame.length < 10) bad('too short');
  const version = frame[0] as number;
  if (version !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      'UnsupportedVersion',
      `protocol version ${version} is not supported (this is v1)`,
    );
  }
  const type = messageTypeOf(frame[1] as number);
  if (!type) throw new ProtocolError('UnknownType', `unknown message type ${frame[1]}`);
  const senderKind = frame[2];
  const senderLen = frame.readUInt16BE(3);
  let offset = 5;
  if (offset + senderLen > frame.length) bad('sender runs past the frame');
  const senderBytes = frame.subarray(offset, offset + senderLen);
  offset += senderLen;
  let sender: SenderRef;
  if (senderKind === SENDER_KIND.certificate) {
    if (senderLen < 1 || senderLen > LIMITS.certificateBytes) bad('sender certificate size');
    sender = { kind: 'certificate', der: senderBytes };
  } else if (senderKind === SENDER_KIND.fingerprint) {
    if (senderLen !== FINGERPRINT_BYTES) bad('sender fingerprint size');
    sender = { kind: 'fingerprint', fingerprint: senderBytes };
  } else {
    return bad('unknown sender kind');
  }
  if (offset + 1 > frame.length) bad('missing target');
  const targetLen = frame[offset] as number;
  offset += 1;
  if (offset + targetLen > frame.length) bad('target runs past the frame');
  const target = frame.toString('latin1', offset, offset + targetLen);
  if (targetLen > 0 && !isValidIdentityName(target)) bad('target is not an identity');
  offset += targetLen;
  if (offset + 4 > frame.length) bad('missing body length');
  const bodyLen = frame.readUInt32BE(offset);
  offset += 4;
  if (bodyLen > frame.length - offset) bad('body runs past the frame');
  const body = frame.subarray(offset, offset + bodyLen);
  offset += bodyLen;
  const signed = frame.subarray(0, offset);
  if (offset + 2 > frame.length) bad('missing signature length');
  const sigLen = frame.readUInt16BE(offset);
  offset += 2;
  if (sigLen < 1 || sigLen > MAX_SIGNATURE_BYTES) bad('signature size');
  if (offset + sigLen !== frame.length) bad('length fields do not add up to the frame');
  const signature = frame.subarray(offset, offset + sigLen);
  return { version, type, sender, target, body, signed, signature };
}

/** The bytes an envelope's signature covers. */
export function signedData(header: Pick<EnvelopeHeader, 'signed'>): Buffer {
  return Buffer.concat([SIGNATURE_LABEL, header.signed]);
}

export function verifyHeader(header: EnvelopeHeader, publicKey: KeyObject): void {
  if (!verifyPss(publicKey, signedData(header), header.signature)) {
    throw new ProtocolError('BadSignature', `${header.type} signature does not verify`);
  }
}

/** Schema-decodes a body. Call only after verifyHeader: verify before parse. */
export function decodeBody<T extends MessageType>(type: T, body: Uint8Array): BodyOf<T> {
  if (type === 'ENCRYPTED_TEXT') {
    return decodeJsonBody(
      BODY_SCHEMAS.ENCRYPTED_TEXT,
      body,
      'ENCRYPTED_TEXT body',
      fastEncryptedText,
    ) as BodyOf<T>;
  }
  return decodeJsonBody(BODY_SCHEMAS[type], body, `${type} body`) as BodyOf<T>;
}

export interface Message<T extends MessageType = MessageType> {
  header: EnvelopeHeader;
  type: T;
  body: BodyOf<T>;
}

/**
 * Verify, then parse. `resolveKey` maps the header's sender to a public key it trusts (a
 * CA-validated certificate) or throws; its errors pass through unchanged.
 */
export function openMessage(frame: Buffer, resolveKey: (header: EnvelopeHeader) => KeyObject): Message {
  const header = readHeader(frame);
  verifyHeader(header, resolveKey(header));
  return { header, type: header.type, body: decodeBody(header.type, header.body) };
}

/** Header and body, ready to be signed. */
export function buildUnsigned<T extends MessageType>(
  type: T,
  sender: SenderRef,
  target: string,
  body: BodyOf<T> | Buffer,
): Buffer {
  const senderBytes = sender.kind === 'certificate' ? sender.der : sender.fingerprint;
  if (target.length > 0 && !isValidIdentityName(target)) {
    throw new ProtocolError('BadFrame', 'target is not a valid identity');
  }
  const bodyBytes = Buffer.isBuffer(body) ? body : encodeJsonBody(body);
  const out = Buffer.allocUnsafe(5 + senderBytes.length + 1 + target.length + 4 + bodyBytes.length);
  let o = 0;
  o = out.writeUInt8(PROTOCOL_VERSION, o);
  o = out.writeUInt8(MESSAGE_TYPES[type], o);
  o = out.writeUInt8(SENDER_KIND[sender.kind], o);
  o = out.writeUInt16BE(senderBytes.length, o);
  o += senderBytes.copy(out, o);
  o = out.writeUInt8(target.length, o);
  o += out.write(target, o, 'latin1');
  o = out.writeUInt32BE(bodyBytes.length, o);
  bodyBytes.copy(out, o);
  return out;
}

/** Appends the signature; returns the envelope (a frame payload, without the length prefix). */
export function attachSignature(unsigned: Buffer, signature: Buffer): Buffer {
  const out = Buffer.allocUnsafe(unsigned.length + 2 + signature.length);
  unsigned.copy(out, 0);
  out.writeUInt16BE(signature.length, unsigned.length);
  signature.copy(out, unsigned.length + 2);
  return out;
}

export type Signer = (data: Buffer) => Buffer;
export type AsyncSigner = (data: Buffer) => Promise<Buffer>;

export function sealMessage<T extends MessageType>(
  type: T,
  sender: SenderRef,
  target: string,
  body: BodyOf<T>,
  sign: Signer,
): Buffer {
  const unsigned = buildUnsigned(type, sender, target, body);
  return attachSignature(unsigned, sign(Buffer.concat([SIGNATURE_LABEL, unsigned])));
}

export async function sealMessageAsync<T extends MessageType>(
  type: T,
  sender: SenderRef,
  target: string,
  body: BodyOf<T>,
  sign: AsyncSigner,
): Promise<Buffer> {
  const unsigned = buildUnsigned(type, sender, target, body);
  return attachSignature(unsigned, await sign(Buffer.concat([SIGNATURE_LABEL, unsigned])));
}
