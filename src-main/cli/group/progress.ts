/**
 * "creating bundles: 12/62" on stderr while a group is made, only when stderr is a terminal: a
 * script or a log gets the same output as before (nothing on stderr), a person sees it move.
 */
export class Progress {
  readonly #total: number;
  readonly #stream: NodeJS.WriteStream;
  readonly #enabled: boolean;
  #done = 0;

  constructor(total: number, stream: NodeJS.WriteStream = process.stderr) {
    this.#total = total;
    this.#stream = stream;
    this.#enabled = stream.isTTY === true;
    this.#show();
  }

  tick(): void {
    this.#done += 1;
    this.#show();
  }

  /** Ends the line, so what follows starts on a new one. */
  end(): void {
    if (this.#enabled) this.#stream.write('\n');
  }

  #show(): void {
    if (this.#enabled) this.#stream.write(`\rcreating bundles: ${this.#done}/${this.#total}`);
  }
}
