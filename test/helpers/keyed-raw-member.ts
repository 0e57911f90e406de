/**
 * A raw protocol member that also takes part in key establishment: a RawMember (it writes whatever
 * frames a test wants, on its own authenticated connection) driving the engine's KeyEstablishment
 * state machine for the honest part. It fetches and validates certificates itself, verifies member
 * frames before handing them to the machine, and holds the group keys it derives, so a test can
 * send well-formed, correctly signed and even correctly encrypted frames with hostile contents.
 */
import { Certificate } from '../../src-main/core/pki/certificate.js';
import type { LocalIdentity } from '../../src-main/core/pki/local-identity.js';
import { aesGcmEncrypt } from '../../src-main/core/crypto/primitives.js';
import { KeyEstablishment, type EstablishedKey } from '../../src-main/client/key-establishment.js';
import { chatAad, sortMembers } from '../../src-main/client/key-schedule.js';
import {
  decodeBody,
  RELAY_TYPES,
  TARGETED_TYPES,
  verifyHeader,
  type BodyOf,
  type MessageType,
} from '../../src-main/core/protocol/index.js';
import { verifyRoster, type Roster } from '../../src-main/core/roster/index.js';
import { RawMember, type ReceivedFrame } from './raw-member.js';
import { keyListDeps } from './key-bus.js';

export class KeyedRawMember {
  readonly keys: EstablishedKey[] = [];
  /** Key-establishment checks that failed here (an honest group never produces any). */
  readonly problems: string[] = [];
  readonly machine: KeyEstablishment;
  /** Validated certificates by fingerprint hex. */
  private readonly certs = new Map<string, Certificate>();
  private presence: BodyOf<'PRESENCE'> | undefined;
  private readonly asked = new Set<string>();
  private readonly lastSeq = new Map<number, number>();
  /** The relay's roster (CA-verified), as the engine holds it: M of every key. */
  private roster: Roster | undefined;

  private constructor(readonly raw: RawMember) {
    const me = raw.me;
    this.certs.set(me.certificate.fingerprintHex, me.certificate);
    this.machine = new KeyEstablishment({
      identity: me,
      certificateOf: (name) => this.certificateOf(name),
      send: (type, target, body) => raw.sendPayload(raw.seal(type, target, body)),
      ...keyListDeps(this.keys),
      onKey: (k) => this.keys.push(k),
      onProblem: (m) => this.problems.push(m),
    });
    for (const f of raw.frames) this.onFrame(f);
    raw.onAccepted = (f) => this.onFrame(f);
  }

  static async join(identity: LocalIdentity, port: number): Promise<KeyedRawMember> {
    return new KeyedRawMember(await RawMember.join(identity, { port }));
  }

  get name(): string {
    return this.raw.name;
  }

  get identity(): LocalIdentity {
    return this.raw.me;
  }

  /** The newest key (the machine never goes back to an older epoch). */
  get key(): EstablishedKey | undefined {
    return this.keys.at(-1);
  }

  /**
   * Waits until this member holds a key whose members (the roster's, M) include `members`, at
   * `minEpoch` or above.
   */
  waitForKey(members: string[], minEpoch = 1, timeoutMs = 20_000): Promise<EstablishedKey> {
    const want = sortMembers(members).join(',');
    return this.raw.until(
      () => {
        const k = this.key;
        return k && k.epoch >= minEpoch && members.every((m) => k.members.includes(m)) ? k : undefined;
      },
      timeoutMs,
      `a key over ${want}`,
    );
  }

  /**
   * An ENCRYPTED_TEXT body under a key this member holds (default: the newest), with any plaintext
   * bytes; `seq` defaults to the next one of this member in that epoch.
   */
  chatBody(
    plaintext: Buffer,
    options: { seq?: number; key?: EstablishedKey } = {},
  ): BodyOf<'ENCRYPTED_TEXT'> {
    const key = options.key ?? this.key;
    if (!key) throw new Error(`${this.name} holds no key`);
    const seq = options.seq ?? (this.lastSeq.get(key.epoch) ?? 0) + 1;
    this.lastSeq.set(key.epoch, Math.max(seq, this.lastSeq.get(key.epoch) ?? 0));
    const { iv, ciphertext } = aesGcmEncrypt(
      key.derived.key,
      plaintext,
      chatAad(this.identity.groupId, key.epoch, this.name, seq),
    );
    return { epoch: key.epoch, seq, iv, ciphertext };
  }

  send<T extends MessageType>(type: T, target: string, body: BodyOf<T>): void {
    this.raw.sendPayload(this.raw.seal(type, target, body));
  }

  private certificateOf(name: string): Certificate | undefined {
    const fp = this.presence?.members.find((m) => m.name === name)?.fingerprint;
    return fp === undefined ? undefined : this.certs.get(fp);
  }

  private onFrame(f: ReceivedFrame): void {
    try {
      if (f.type === 'ROSTER') this.onRoster(f.raw);
      else if (f.type === 'PRESENCE') this.onPresence(f.body as BodyOf<'PRESENCE'>);
      else if (f.type === 'CERT_RESPONSE') this.onCertResponse(f.body as BodyOf<'CERT_RESPONSE'>);
      else if (!RELAY_TYPES.has(f.type)) this.onMemberFrame(f);
    } catch (err) {
      this.problems.push(`${f.type}: ${(err as Error).message}`);
    }
  }

  /** The CA-signed roster the relay pushes after login: M, and certificates of offline members. */
  private onRoster(bytes: Buffer): void {
    const roster = verifyRoster(bytes, this.identity.ca);
    if (this.roster && roster.version <= this.roster.version) return;
    this.roster = roster;
    for (const m of roster.members) this.certs.set(m.certificate.fingerprintHex, m.certificate);
    this.machine.setRoster(roster);
  }

  private onPresence(body: BodyOf<'PRESENCE'>): void {
    if (this.presence && body.version <= this.presence.version) return;
    this.presence = body;
    const missing = body.members
      .filter((m) => !this.certs.has(m.fingerprint) && !this.asked.has(m.fingerprint))
      .map((m) => {
        this.asked.add(m.fingerprint);
        return m.name;
      });
    if (missing.length > 0) this.send('CERT_REQUEST', '', { names: missing });
    this.settle();
  }

  private onCertResponse(body: BodyOf<'CERT_RESPONSE'>): void {
    for (const entry of body.certificates) {
      const cert = this.identity.validator.validate(Certificate.fromDer(entry.certificate), {
        role: 'member',
      });
      if (cert.name === entry.name) this.certs.set(cert.fingerprintHex, cert);
    }
    this.settle();
  }

  /** Once every PRESENCE member's certificate is here: the membership the machine works with. */
  private settle(): void {
    const p = this.presence;
    if (!p || !p.members.every((m) => this.certs.has(m.fingerprint))) return;
    this.machine.setMembership(sortMembers(p.members.map((m) => m.name)), p.version);
  }

  private onMemberFrame(f: ReceivedFrame): void {
    const h = f.header;
    if (h.sender.kind !== 'fingerprint') return;
    const cert = this.certs.get(h.sender.fingerprint.toString('hex'));
    if (!cert) return;
    if (TARGETED_TYPES.has(h.type) && h.target !== this.name) return;
    verifyHeader(h, cert.publicKey);
    const sender = cert.name;
    switch (h.type) {
      case 'NONCE_REQUEST':
        this.machine.onNonceRequest(sender, decodeBody('NONCE_REQUEST', h.body));
        return;
      case 'NONCE_RESPONSE':
        this.machine.onNonceResponse(sender, decodeBody('NONCE_RESPONSE', h.body));
        return;
      case 'KEY_DISTRIBUTION':
        this.machine.onKeyDistribution(sender, decodeBody('KEY_DISTRIBUTION', h.body));
        return;
      case 'REKEY_REQUEST':
        this.machine.onRekeyRequest(sender, decodeBody('REKEY_REQUEST', h.body));
        return;
      default:
        return; // chat and DISCONNECT: nothing to do for this member
    }
  }
}
