/**
 * The relay the app can run itself ("Start relay…"): the relay's own child entry in a child
 * process (ports.relayLauncher), its bundle checked first in the PKI worker for typed errors, its
 * messages and exit turned into the relay panel's view (running, members, crashed, stopped).
 */
import { join } from 'node:path';
import type { Args } from '../../src-shared/ipc-contract.js';
import type { RelayView } from '../../src-shared/model.js';
import { openBundle, readBundleFile } from './bundle-files.js';
import { AppFailure, toAppError } from './errors.js';
import type { EventHub } from './event-hub.js';
import type { FileChoices } from './file-choices.js';
import type { AppServicePorts, RelayChildMessage, RelayProcess } from './ports.js';
import type { Settings } from './settings.js';

const RELAY_START_TIMEOUT_MS = 60_000;

export interface RelayControlDeps {
  ports: Pick<AppServicePorts, 'relayLauncher' | 'pki' | 'dataDir'>;
  settings: Settings;
  hub: EventHub;
  choices: FileChoices;
}

export class RelayControl {
  readonly #deps: RelayControlDeps;
  #view: RelayView = { status: 'stopped', memberCount: 0, members: [] };
  #process: RelayProcess | undefined;
  /** A start is checking its bundle (in the PKI worker) and has not launched yet. */
  #checking = false;
  #stopping = false;

  constructor(deps: RelayControlDeps) {
    this.#deps = deps;
  }

  get view(): RelayView {
    return this.#view;
  }

  /** The relay child's process id while one runs (for logs and tests). */
  get pid(): number | undefined {
    return this.#process?.pid;
  }

  get running(): boolean {
    return this.#process !== undefined;
  }

  /** Starts the relay with the chosen bundle; resolves once it listens. */
  async start(arg: Args<'startRelay'>): Promise<RelayView> {
    const { ports, settings } = this.#deps;
    if (this.#process || this.#checking)
      throw new AppFailure('RelayAlreadyRunning', 'A relay is already running.');
    const bundlePath = this.#deps.choices.resolve(arg.token, 'bundle');
    // Check the bundle here (in the PKI worker), for typed errors in plain words; the child opens it again.
    this.#checking = true;
    let dataDir: string;
    try {
      const data = await readBundleFile(bundlePath);
      const relayIdentity = await openBundle(ports.pki, data, arg.password, 'relay');
      data.fill(0);
      // One data directory per group and relay identity: a relay of another group never meets this log.
      dataDir = join(ports.dataDir, 'relays', relayIdentity.groupId, relayIdentity.name);
    } finally {
      this.#checking = false;
    }
    const host = arg.host ?? '127.0.0.1';
    settings.set('relayLaunch', { port: arg.port });
    this.#setView({ status: 'starting', memberCount: 0, members: [] });
    this.#stopping = false;
    let proc: RelayProcess;
    try {
      proc = ports.relayLauncher.launch({
        bundlePath,
        password: arg.password,
        host,
        port: arg.port,
        dataDir,
      });
    } catch (err) {
      this.#setView({ status: 'stopped', memberCount: 0, members: [], error: toAppError(err).message });
      throw new AppFailure('RelayFailed', `The relay could not be started: ${toAppError(err).message}`);
    }
    this.#process = proc;
    return await new Promise<RelayView>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        void proc.stop();
        reject(new AppFailure('RelayFailed', 'The relay did not start within a minute.'));
      }, RELAY_START_TIMEOUT_MS);
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn();
      };
      proc.onMessage((message) => {
        this.#onMessage(proc, message);
        if (message.type === 'listening') settle(() => resolve(this.#view));
        if (message.type === 'error' && this.#view.status === 'starting')
          settle(() => {
            void proc.stop();
            reject(new AppFailure('RelayFailed', `The relay could not start: ${message.message}`));
          });
      });
      proc.onExit((code, signal) => {
        this.#onExit(proc, code, signal);
        settle(() =>
          reject(
            new AppFailure(
              'RelayFailed',
              `The relay stopped while starting (${signal ?? `exit code ${String(code)}`})${this.#view.error ? `: ${this.#view.error}` : ''}.`,
            ),
          ),
        );
      });
    });
  }

  async stop(): Promise<RelayView> {
    const proc = this.#process;
    if (!proc) {
      if (this.#view.status === 'crashed') this.#setView({ status: 'stopped', memberCount: 0, members: [] });
      else throw new AppFailure('RelayNotRunning', 'No relay is running.');
      return this.#view;
    }
    this.#stopping = true;
    this.#setView({ ...this.#view, status: 'stopping' });
    await proc.stop();
    if (this.#process === proc) this.#onExit(proc, 0, null);
    return this.#view;
  }

  #setView(view: RelayView): void {
    this.#view = view;
    this.#deps.hub.emit({ type: 'relay', relay: view });
  }

  #onMessage(proc: RelayProcess, message: RelayChildMessage): void {
    if (proc !== this.#process) return;
    switch (message.type) {
      case 'listening':
        this.#setView({ ...this.#view, status: 'running', host: message.host, port: message.port });
        break;
      case 'members':
        this.#setView({ ...this.#view, memberCount: message.count, members: [...message.members] });
        break;
      case 'error':
        this.#setView({ ...this.#view, error: message.message });
        this.#deps.hub.emit({
          type: 'error',
          error: { code: 'RelayFailed', message: `Relay: ${message.message}` },
        });
        break;
    }
  }

  #onExit(proc: RelayProcess, code: number | null, signal: string | null): void {
    if (proc !== this.#process) return;
    this.#process = undefined;
    if (this.#stopping) {
      this.#setView({ status: 'stopped', memberCount: 0, members: [] });
      return;
    }
    const how = signal ? `was killed (${signal})` : `stopped unexpectedly (exit code ${String(code)})`;
    const error = `The relay ${how}.${this.#view.error ? ` Last error: ${this.#view.error}` : ''}`;
    this.#setView({ status: 'crashed', memberCount: 0, members: [], error });
    this.#deps.hub.emit({ type: 'error', error: { code: 'RelayFailed', message: error } });
  }
}
