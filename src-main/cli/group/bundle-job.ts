/** Messages between group create and its bundle-writer threads (bundle-writer.ts). Plain data only. */

export interface BundleJob {
  id: number;
  /** The holder's certificate and key; the CA certificate (not its key: signing stays in the main thread). */
  certificatePem: string;
  privateKeyPem: string;
  caPem: string;
  password: string;
  kdfIterations: number;
}

export type BundleResult =
  { id: number; ok: true; bytes: Uint8Array } | { id: number; ok: false; code?: string; message: string };
