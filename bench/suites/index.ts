import type { BenchSuite } from '../harness.js';
import { appHistorySuite } from './app-history.js';
import { clientSuite } from './client.js';
import { clusterSuite } from './cluster.js';
import { clusterRawSuite } from './cluster-raw.js';
import { cryptoSuite } from './crypto.js';
import { durableSuite } from './durable.js';
import { historySuite } from './history.js';
import { relaySuite } from './relay.js';
import { relayLogSuite } from './relay-log.js';

/** Every suite `npm run bench` runs, in order. Add a suite by importing it here. */
export const SUITES: BenchSuite[] = [
  cryptoSuite,
  relaySuite,
  relayLogSuite,
  historySuite,
  appHistorySuite,
  clientSuite,
  durableSuite,
  clusterRawSuite,
  clusterSuite,
];
