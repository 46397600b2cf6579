/**
 * Re-pricing through the extension: one `Repricer` per notebook panel tells the panel's kernel
 * which readouts the notebook holds (comm `nbcarbon.reprice`, protocol version 2 in reprice.ts),
 * and writes the new bundles the kernel sends into the notebook model, so a region or PUE change
 * reaches 10,000 readouts in a few messages instead of 10,000 rate-limited `update_display_data`,
 * and the saved notebook carries the new prices.
 *
 * - The comm is opened when the kernel connection is ready (idle) and the notebook holds readouts,
 *   or when a readout appears and no comm is open. A kernel without nbcarbon loaded closes it at
 *   once; it is then opened again only when the next readout appears.
 * - Nothing more is sent until the kernel has handled the opening message (its future is done, or
 *   a message came on the comm: the comm's `onMsg` is used for that only): later messages may
 *   travel on a comm subshell (JupyterLab 4.4+, ipykernel 7) and could otherwise reach the kernel
 *   before the comm exists there.
 * - New readouts are told in batches (`holds`), at most one message per SETTLE_MS; readouts that
 *   went away (outputs cleared, cells deleted) are told as `drops`.
 * - Updates are read from the kernel connection's IOPub (`iopubMessage`), whichever comm carries
 *   them: the kernel sends each update once, on the newest comm that claims the record, and that
 *   may be the comm of a page since reloaded (still open in the kernel, which cannot tell it is
 *   dead); IOPub reaches every client, so this page still gets them. They are applied only there,
 *   never from `onMsg`, so a message on this page's own comm is applied once. Each is
 *   acknowledged on this page's comm when it is open and known to the kernel.
 * - A restart, a kernel change or a dead kernel forgets the comm and everything told; a kernel
 *   change also moves the IOPub connection to the new kernel.
 */

import type { ISessionContext } from '@jupyterlab/apputils';
import type { ICellModel, ICodeCellModel } from '@jupyterlab/cells';
import type { NotebookPanel } from '@jupyterlab/notebook';
import type { IOutputAreaModel } from '@jupyterlab/outputarea';
import type { Kernel, KernelMessage } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';

import {
  Holdings,
  TARGET,
  ackMessage,
  applyUpdates,
  dropsMessage,
  holdsMessage,
  isRepriceMessage,
  metadataOf,
  parseUpdates,
  readoutId,
  readoutIds
} from './reprice';

/** How long new readouts are collected before they are told to the kernel (ms). */
const SETTLE_MS = 80;

let warned = false;

/** Warn once per page: a kernel speaking another version would otherwise warn per message. */
function warnOnce(message: string, ...rest: unknown[]): void {
  if (!warned) {
    warned = true;
    console.warn(`nbcarbon: ${message}`, ...rest);
  }
}

export class Repricer {
  constructor(readonly panel: NotebookPanel) {
    const session = panel.sessionContext;
    session.kernelChanged.connect(this._onKernelChanged, this);
    session.statusChanged.connect(this._onStatusChanged, this);
    this._watchModel();
    void panel.context.ready.then(() => {
      if (!this._disposed) {
        this._ready = true;
        this._watchModel();
        this._onKernel(session.session?.kernel ?? null);
      }
    });
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Whether a comm is open (or opening) now; for tests and debugging. */
  get isOpen(): boolean {
    return this._comm !== null;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    this._forget(true);
    Signal.disconnectReceiver(this);
  }

  // -- the notebook ------------------------------------------------------------------------------

  private _watchModel(): void {
    const model = this.panel.model;
    if (!model || this._watchedModel === model) {
      return;
    }
    this._watchedModel = model;
    model.cells.changed.connect(this._onCellsChanged, this);
    for (let i = 0; i < model.cells.length; i++) {
      this._watchCell(model.cells.get(i));
    }
  }

  private _watchCell(cell: ICellModel): void {
    if (cell.type === 'code') {
      (cell as ICodeCellModel).outputs.changed.connect(this._onOutputsChanged, this);
    }
  }

  /** Every code cell's outputs, in notebook order. */
  private *_outputLists(): Generator<IOutputAreaModel> {
    const model = this.panel.model;
    if (!model) {
      return;
    }
    for (let i = 0; i < model.cells.length; i++) {
      const cell = model.cells.get(i);
      if (cell.type === 'code') {
        yield (cell as ICodeCellModel).outputs;
      }
    }
  }

  private _present(): string[] {
    return readoutIds(metadataOf(this._outputLists()));
  }

  private _onCellsChanged(_: unknown, args: { type: string; newValues: ICellModel[] }): void {
    for (const cell of args.newValues) {
      this._watchCell(cell);
      if (cell.type === 'code') {
        const ids = readoutIds(metadataOf([(cell as ICodeCellModel).outputs]));
        if (ids.length > 0) {
          this._holdings.note(ids); // a cell pasted or restored with its readouts
          this._added = true;
        }
      }
    }
    if (args.type !== 'add') {
      this._rescan = true;
    }
    this._schedule();
  }

  private _onOutputsChanged(_: IOutputAreaModel, args: IOutputAreaModel.ChangedArgs): void {
    if (this._applying) {
      return; // our own writes: the same records
    }
    let noted = false;
    if (args.type === 'add' || args.type === 'set') {
      const ids = readoutIds(args.newValues.map(o => o.metadata));
      if (ids.length > 0) {
        this._holdings.note(ids);
        noted = true;
      }
      if (args.type === 'set') {
        const before = args.oldValues.map(o => readoutId(o.metadata)).filter(id => id !== null);
        if (before.some(id => !ids.includes(id))) {
          this._rescan = true;
        }
      }
    } else if (args.type !== 'move') {
      this._rescan = true; // removed or cleared
    }
    if (noted) {
      this._added = true;
    }
    if (noted || this._rescan) {
      this._schedule();
    }
  }

  private _schedule(): void {
    if (this._timer === null && !this._disposed) {
      this._timer = setTimeout(() => this._flush(), SETTLE_MS);
    }
  }

  /** Tell the kernel what changed since the last time, or open the comm for new readouts. */
  private _flush(): void {
    this._timer = null;
    if (this._disposed) {
      return;
    }
    const kernel = this._kernel;
    const comm = this._comm;
    if (kernel === null || comm === null) {
      const added = this._added;
      this._added = false;
      this._rescan = false;
      this._holdings.reset();
      if (kernel !== null && added && this._ready) {
        this._open(kernel);
      }
      return;
    }
    if (!this._opened) {
      return; // _onOpened flushes
    }
    const present = this._rescan ? new Set(this._present()) : undefined;
    this._rescan = false;
    this._added = false;
    const { holds, drops } = this._holdings.take(present);
    try {
      if (holds.length > 0) {
        comm.send(holdsMessage(holds));
      }
      if (drops.length > 0) {
        comm.send(dropsMessage(drops));
      }
    } catch (reason) {
      warnOnce('could not tell the kernel which readouts this notebook holds', reason);
      this._forget(false);
    }
  }

  // -- the kernel ----------------------------------------------------------------------------------

  private _onKernelChanged(_: ISessionContext, args: { newValue: Kernel.IKernelConnection | null }): void {
    if (this._ready) {
      this._onKernel(args.newValue);
    }
  }

  private _onKernel(kernel: Kernel.IKernelConnection | null): void {
    if (kernel === this._kernel) {
      return;
    }
    this._forget(true);
    this._kernel?.iopubMessage.disconnect(this._onIOPub, this);
    this._kernel = kernel;
    kernel?.iopubMessage.connect(this._onIOPub, this);
    this._awaitingReady = kernel !== null;
    if (kernel !== null && kernel.status === 'idle') {
      this._onReady();
    }
  }

  private _onStatusChanged(_: ISessionContext, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      this._forget(false);
      this._awaitingReady = status !== 'dead';
    } else if (status === 'idle' && this._awaitingReady && this._ready) {
      this._onReady();
    }
  }

  /** The kernel connection is ready: open the comm if the notebook holds readouts. */
  private _onReady(): void {
    this._awaitingReady = false;
    if (this._kernel !== null && this._comm === null) {
      this._open(this._kernel);
    }
  }

  private _open(kernel: Kernel.IKernelConnection): void {
    const present = this._present();
    if (present.length === 0 || this._disposed) {
      return;
    }
    let comm: Kernel.IComm;
    try {
      comm = kernel.createComm(TARGET);
    } catch (reason) {
      warnOnce('could not open a comm to the kernel', reason);
      return;
    }
    this._comm = comm;
    this._opened = false;
    this._holdings.reset();
    this._holdings.markSent(present);
    // the kernel knows the comm, whatever became of the opening's future; updates are applied
    // from IOPub (_onIOPub), this message among them
    comm.onMsg = () => this._onOpened(comm);
    comm.onClose = () => {
      if (this._comm === comm) {
        // the kernel closed it (nbcarbon not loaded there, or unloaded): open again on the next readout
        this._comm = null;
        this._opened = false;
        this._holdings.reset();
      }
    };
    try {
      comm.open(holdsMessage(present)).done.then(
        () => this._onOpened(comm),
        () => this._onOpened(comm) // the kernel went away; its status change forgets the comm
      );
    } catch (reason) {
      warnOnce('could not open a comm to the kernel', reason);
      this._forget(false);
    }
  }

  private _onOpened(comm: Kernel.IComm): void {
    if (this._comm === comm && !this._opened) {
      this._opened = true;
      if (this._holdings.pending.size > 0 || this._rescan) {
        this._flush();
      }
    }
  }

  /**
   * Every IOPub message of the kernel: write a batch of re-priced readouts into the notebook,
   * whichever comm (this page's or another client's) carried it, and acknowledge it on this
   * page's comm. Other messages, other comms' included, are none of ours.
   */
  private _onIOPub(kernel: Kernel.IKernelConnection, msg: KernelMessage.IIOPubMessage): void {
    if (kernel !== this._kernel || this._disposed || msg.header.msg_type !== 'comm_msg') {
      return;
    }
    const data = (msg as KernelMessage.ICommMsgMsg<'iopub'>).content.data;
    if (!isRepriceMessage(data)) {
      return;
    }
    try {
      const read = parseUpdates(data);
      if (typeof read === 'string') {
        warnOnce(`ignored a re-pricing message from the kernel (${read})`);
        return;
      }
      if (read.skipped > 0) {
        warnOnce(`ignored ${read.skipped} malformed update(s) in a re-pricing message`);
      }
      let applied = 0;
      this._applying = true;
      try {
        applied = applyUpdates(this._outputLists(), read.updates);
      } finally {
        this._applying = false;
      }
      const comm = this._comm;
      if (comm !== null && this._opened && !comm.isDisposed) {
        comm.send(ackMessage(read.seq, applied));
      }
    } catch (reason) {
      warnOnce('could not apply a re-pricing message', reason);
    }
  }

  /** Forget the comm and what it was told; `close` tells the kernel too when it can still hear. */
  private _forget(close: boolean): void {
    const comm = this._comm;
    this._comm = null;
    this._opened = false;
    this._holdings.reset();
    if (comm === null || comm.isDisposed) {
      return;
    }
    try {
      if (close && this._kernel !== null && !this._kernel.isDisposed && this._kernel.status !== 'dead') {
        comm.close();
      } else {
        comm.dispose();
      }
    } catch {
      try {
        comm.dispose();
      } catch {
        // already gone with its kernel
      }
    }
  }

  private _disposed = false;
  /** The document context is ready (the model holds the notebook's cells). */
  private _ready = false;
  private _watchedModel: NotebookPanel['model'] = null;
  private _kernel: Kernel.IKernelConnection | null = null;
  /** A new or restarted kernel: open the comm when it is next idle. */
  private _awaitingReady = false;
  private _comm: Kernel.IComm | null = null;
  /** The kernel has handled the comm's opening message. */
  private _opened = false;
  private _holdings = new Holdings();
  /** Readouts appeared since the last flush. */
  private _added = false;
  /** Outputs went away since the last flush: look for drops. */
  private _rescan = false;
  private _applying = false;
  private _timer: ReturnType<typeof setTimeout> | null = null;
}
