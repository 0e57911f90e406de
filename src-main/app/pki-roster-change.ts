/**
 * The organiser's roster change, run inside the PKI worker (pki-worker.ts): ca.p12 is opened
 * there, the change is checked against the newest roster and signed, and for an added member a
 * certificate is issued and written as a bundle. The CA's private key lives in the worker for
 * this one call and goes with it; nothing of it crosses back.
 */
import { readBundle, writeBundle } from '../core/pki/bundle.js';
import { PkiError } from '../core/pki/errors.js';
import { issueCertificate, type Credential } from '../core/pki/issue.js';
import { nextRoster, signRoster, verifyRoster } from '../core/roster/index.js';
import { transferableCopy, type ChangeRosterRequest, type RosterChangeData } from './pki-protocol.js';

function openGroupCa(request: ChangeRosterRequest): Credential {
  try {
    const loaded = readBundle(request.caBytes, request.caPassword);
    if (!loaded.certificate.isCa || loaded.ca !== loaded.certificate) {
      throw new PkiError(
        'UnexpectedCa',
        `this is the bundle of "${loaded.certificate.name}", not the group CA bundle (ca.p12)`,
      );
    }
    if (loaded.certificate.fingerprintHex !== request.groupId) {
      throw new PkiError('UnexpectedCa', `"${loaded.certificate.name}" is the CA of another group`);
    }
    return { certificate: loaded.certificate, privateKeyPem: loaded.privateKeyPem };
  } finally {
    request.caBytes.fill(0);
  }
}

export function changeRosterOp(request: ChangeRosterRequest): RosterChangeData {
  const ca = openGroupCa(request);
  const current = verifyRoster(request.roster, ca.certificate);
  const { change } = request;
  if (change.kind === 'remove-member') {
    const body = nextRoster(current, { kind: 'remove-member', name: change.name, reason: change.reason });
    const next = verifyRoster(signRoster(body, ca), ca.certificate);
    return {
      roster: transferableCopy(next.bytes),
      version: next.version,
      bundle: null,
      fingerprintHex: null,
    };
  }
  const credential = issueCertificate(ca, { name: change.name, role: 'member' });
  // The change is checked (and signed) before the slow bundle is written: a refusal writes nothing.
  const body = nextRoster(current, { kind: 'add-member', certificate: credential.certificate });
  const next = verifyRoster(signRoster(body, ca), ca.certificate);
  const bundle = writeBundle(credential, ca.certificate, change.password, {
    kdfIterations: change.kdfIterations,
  });
  return {
    roster: transferableCopy(next.bytes),
    version: next.version,
    bundle: transferableCopy(bundle),
    fingerprintHex: credential.certificate.fingerprintHex,
  };
}
