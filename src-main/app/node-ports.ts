/**
 * Plain-Node implementations of the service's ports: the relay launcher as a forked Node child,
 * and a secret store that is never available (so only the password-protected bundle is kept).
 */
import { fork } from 'node:child_process';
import type { RelayChildMessage, RelayLauncher, RelayProcess, SecretStoragePort } from './ports.js';
import { parseRelayChildMessage, relayLaunchSpec } from './relay-messages.js';

export function forkRelayLauncher(entryPath: string, options: { silent?: boolean } = {}): RelayLauncher {
  return {
    launch(launch): RelayProcess {
      const spec = relayLaunchSpec(launch, process.env);
      const child = fork(entryPath, spec.args, {
        env: spec.env,
        stdio:
          options.silent === false
            ? ['ignore', 'inherit', 'inherit', 'ipc']
            : ['ignore', 'ignore', 'ignore', 'ipc'],
        serialization: 'json',
      });
      const messageListeners: ((m: RelayChildMessage) => void)[] = [];
      const exitListeners: ((code: number | null, signal: string | null) => void)[] = [];
      let exited = false;
      const exitWaiters: (() => void)[] = [];
      child.on('message', (raw) => {
        const message = parseRelayChildMessage(raw);
        if (message) for (const l of messageListeners) l(message);
      });
      child.on('error', (err) => {
        for (const l of messageListeners) l({ type: 'error', message: err.message });
      });
      child.once('exit', (code, signal) => {
        exited = true;
        for (const l of exitListeners) l(code, signal);
        for (const w of exitWaiters.splice(0)) w();
      });
      return {
        pid: child.pid,
        onMessage: (l) => void messageListeners.push(l),
        onExit: (l) => void exitListeners.push(l),
        stop: () =>
          new Promise<void>((resolve) => {
            if (exited) return resolve();
            exitWaiters.push(resolve);
            if (child.connected) child.send({ type: 'stop' }, () => undefined);
            else child.kill('SIGTERM');
            setTimeout(() => {
              if (!exited) child.kill('SIGKILL');
            }, 10_000).unref();
          }),
      };
    },
  };
}

export const noSecretStorage: SecretStoragePort = {
  isAvailable: () => false,
  encryptString: () => {
    throw new Error('no secret storage');
  },
  decryptString: () => {
    throw new Error('no secret storage');
  },
};
