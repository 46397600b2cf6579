/**
 * Re-pricing over a comm (protocol version 2; the kernel's side is nbcarbon/frontends.py): which
 * outputs are readouts, the messages the extension sends, the kernel's update messages recognised,
 * read and checked, and a batch of updates written into lists of outputs.
 *
 * Pure: no JupyterLab, no DOM. The output lists are anything shaped like JupyterLab's
 * `IOutputAreaModel` (`length`, `get(i)`, `set(i, output)`), so `repricer.ts` passes the notebook's
 * own output models and the tests pass arrays.
 *
 * The protocol:
 *   - the frontend opens comm target `nbcarbon.reprice` with `{version: 2, holds: [record ids]}`,
 *     then sends `{version: 2, holds: [...]}` as readouts appear and `{version: 2, drops: [...]}`
 *     as they go;
 *   - the kernel sends each update once, kernel-wide, as a `comm_msg`
 *     `{version: 2, target: "nbcarbon.reprice", seq, updates: [[record id, data, metadata], ...]}`
 *     on one nbcarbon comm (the newest open one that claims the record), not necessarily this
 *     page's: a reloaded page leaves its comm open in the kernel, and the kernel cannot tell it is
 *     dead. IOPub reaches every client of the kernel, so every frontend reads every such message
 *     on its kernel connection's IOPub (`isRepriceMessage` recognises one, whichever comm carries
 *     it) and every output whose `metadata.nbcarbon.id` is the record id takes the new data and
 *     metadata. `seq` is kernel-wide and rising;
 *   - a frontend whose own comm is open (and known to the kernel) answers on that comm
 *     `{version: 2, ack: seq, applied: <outputs replaced>}`, 0 included.
 */

/** The comm target the kernel registers when `%load_ext nbcarbon` runs. */
export const TARGET = 'nbcarbon.reprice';
export const VERSION = 2;
/** Where a record lives in an output's metadata (as in records.ts). */
const KEY = 'nbcarbon';

/** JSON, as JupyterLab's models take it (Lumino's `PartialJSONValue`). */
export type JSONValue = null | boolean | number | string | JSONValue[] | IJSONObject;

export interface IJSONObject {
  [key: string]: JSONValue | undefined;
}

// Type aliases, not interfaces: a comm sends JSON objects, and only aliases meet an index signature.
export type HoldsMessage = { version: typeof VERSION; holds: string[] };
export type DropsMessage = { version: typeof VERSION; drops: string[] };
export type AckMessage = { version: typeof VERSION; ack: number; applied: number };

/** A readout's new content. */
export interface IUpdate {
  data: IJSONObject;
  metadata: IJSONObject;
}

/** A kernel message read: its sequence number and the updates by record id. */
export interface IUpdates {
  seq: number;
  updates: Map<string, IUpdate>;
  /** Entries of `updates` that were not `[string, object, object]` (skipped). */
  skipped: number;
}

/** What the lists of outputs hold: `IOutputModel` has these. */
export interface IOutputLike {
  readonly type: string;
  readonly metadata: unknown;
  readonly executionCount?: number | null;
}

/** An output as nbformat writes it (what `IOutputAreaModel.set` takes). */
export interface IOutputJSON {
  [key: string]: JSONValue | undefined;
  output_type: string;
  data: IJSONObject;
  metadata: IJSONObject;
  execution_count?: number | null;
}

/** A list of outputs: `IOutputAreaModel` is one. */
export interface IOutputList<T extends IOutputLike = IOutputLike> {
  readonly length: number;
  get(index: number): T;
  set(index: number, value: IOutputJSON): void;
}

/** A JSON object (from a parsed message, so its values are JSON). */
function isObject(value: unknown): value is IJSONObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The record id an output's metadata carries (a readout or a summary), or null. */
export function recordId(metadata: unknown): string | null {
  if (!isObject(metadata)) {
    return null;
  }
  const record = metadata[KEY];
  return isObject(record) && typeof record.id === 'string' ? record.id : null;
}

/**
 * The record id of a readout, or null: `metadata.nbcarbon` is an object with a string `id` and a
 * `kind` of "cell" or none (summaries have `kind: "summary"`).
 */
export function readoutId(metadata: unknown): string | null {
  const id = recordId(metadata);
  if (id === null) {
    return null;
  }
  const kind = ((metadata as IJSONObject)[KEY] as IJSONObject).kind;
  return kind === undefined || kind === 'cell' ? id : null;
}

/** The readouts' record ids among these outputs' metadata, each once, in order. */
export function readoutIds(metadata: Iterable<unknown>): string[] {
  const seen = new Set<string>();
  for (const m of metadata) {
    const id = readoutId(m);
    if (id !== null) {
      seen.add(id);
    }
  }
  return [...seen];
}

/** The metadata of every output in these lists, in order. */
export function* metadataOf(lists: Iterable<IOutputList>): Generator<unknown> {
  for (const list of lists) {
    for (let i = 0; i < list.length; i++) {
      yield list.get(i).metadata;
    }
  }
}

export function holdsMessage(ids: string[]): HoldsMessage {
  return { version: VERSION, holds: ids };
}

export function dropsMessage(ids: string[]): DropsMessage {
  return { version: VERSION, drops: ids };
}

export function ackMessage(seq: number, applied: number): AckMessage {
  return { version: VERSION, ack: seq, applied };
}

/**
 * Whether a comm message's data is meant for nbcarbon's extension: an object whose `target` is
 * `TARGET`, whatever its version or shape (`parseUpdates` checks those). Other comms' messages,
 * which every client sees on IOPub, are not, and are ignored without a word.
 */
export function isRepriceMessage(data: unknown): boolean {
  return isObject(data) && data.target === TARGET;
}

/**
 * A kernel message read, or why it cannot be: not an object, not for nbcarbon (no `target`),
 * another version, no integer `seq`, no `updates` list. Malformed entries of `updates` are
 * skipped (counted in `skipped`); of two updates of one record, the last wins.
 */
export function parseUpdates(data: unknown): IUpdates | string {
  if (!isObject(data)) {
    return 'not an object';
  }
  if (data.target !== TARGET) {
    return `not for ${TARGET} (target ${JSON.stringify(data.target)})`;
  }
  if (data.version !== VERSION) {
    return `unknown version ${JSON.stringify(data.version)}`;
  }
  const { seq, updates } = data;
  if (typeof seq !== 'number' || !Number.isInteger(seq)) {
    return 'no integer "seq"';
  }
  if (!Array.isArray(updates)) {
    return 'no "updates" list';
  }
  const byId = new Map<string, IUpdate>();
  let skipped = 0;
  for (const entry of updates as unknown[]) {
    if (
      Array.isArray(entry) &&
      entry.length === 3 &&
      typeof entry[0] === 'string' &&
      isObject(entry[1]) &&
      isObject(entry[2])
    ) {
      byId.set(entry[0], { data: entry[1], metadata: entry[2] });
    } else {
      skipped++;
    }
  }
  return { seq, updates: byId, skipped };
}

/**
 * The output that replaces `old`: the update's data and metadata, `old`'s output type (and
 * execution count, for an `execute_result`). Null when `old` has no data to replace (a stream,
 * an error).
 */
export function replacement(old: IOutputLike, update: IUpdate): IOutputJSON | null {
  if (old.type === 'display_data') {
    return { output_type: 'display_data', data: update.data, metadata: update.metadata };
  }
  if (old.type === 'execute_result') {
    return {
      output_type: 'execute_result',
      data: update.data,
      metadata: update.metadata,
      execution_count: old.executionCount ?? null
    };
  }
  return null;
}

/**
 * Write a batch of updates into the lists, in one pass: every output whose record id has an
 * update is replaced (`list.set`). Returns how many outputs were replaced.
 */
export function applyUpdates(lists: Iterable<IOutputList>, updates: ReadonlyMap<string, IUpdate>): number {
  if (updates.size === 0) {
    return 0;
  }
  let applied = 0;
  for (const list of lists) {
    for (let i = 0; i < list.length; i++) {
      const output = list.get(i);
      const id = recordId(output.metadata);
      const update = id === null ? undefined : updates.get(id);
      if (update === undefined) {
        continue;
      }
      const value = replacement(output, update);
      if (value !== null) {
        list.set(i, value);
        applied++;
      }
    }
  }
  return applied;
}

/**
 * The record ids a frontend has told its kernel about (`sent`), and those seen since and not yet
 * told (`pending`), so each id is sent once and a burst of readouts is one message.
 */
export class Holdings {
  /** Ids told to the kernel. */
  get sent(): ReadonlySet<string> {
    return this._sent;
  }

  /** Ids seen and not told yet. */
  get pending(): ReadonlySet<string> {
    return this._pending;
  }

  /** Readouts of these records appeared. */
  note(ids: Iterable<string>): void {
    for (const id of ids) {
      if (!this._sent.has(id)) {
        this._pending.add(id);
      }
    }
  }

  /** These ids were told (in the comm's opening message); none is pending any more. */
  markSent(ids: Iterable<string>): void {
    for (const id of ids) {
      this._sent.add(id);
      this._pending.delete(id);
    }
  }

  /**
   * What to tell the kernel now: the pending ids (`holds`), and when `present` (every readout id
   * in the notebook) is given, the ids told before that are gone (`drops`); pending ids not
   * present are forgotten. Both are then counted as told.
   */
  take(present?: ReadonlySet<string>): { holds: string[]; drops: string[] } {
    const holds: string[] = [];
    for (const id of this._pending) {
      if (present === undefined || present.has(id)) {
        holds.push(id);
        this._sent.add(id);
      }
    }
    this._pending.clear();
    const drops: string[] = [];
    if (present !== undefined) {
      for (const id of this._sent) {
        if (!present.has(id)) {
          drops.push(id);
        }
      }
      for (const id of drops) {
        this._sent.delete(id);
      }
    }
    return { holds, drops };
  }

  /** Forget everything (the comm closed, the kernel changed or restarted). */
  reset(): void {
    this._sent.clear();
    this._pending.clear();
  }

  private _sent = new Set<string>();
  private _pending = new Set<string>();
}
