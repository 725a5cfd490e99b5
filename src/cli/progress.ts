/**
 * Pull progress rendering for the CLI (docs/cli.md §4). Built only from `PullEvent`s, so it works the
 * same for `msb pull`, `msb load` and anything else that emits the union.
 *
 * - TTY: one live line per layer, redrawn in place at most 10×/s; warnings and permanent lines are
 *   printed above the live block.
 * - Not a TTY: plain lines, one per state change, plus at most one progress line every 5 s per
 *   layer; no control characters at all.
 */
import { shortDigest } from '../util/digest.js';
import type { PullEvent } from '../pull/events.js';

import { termSafe } from './escape.js';
import { formatSize } from './format.js';

export { formatSize };

/** The event of one `type`. */
type Ev<K extends PullEvent['type']> = Extract<PullEvent, { type: K }>;

/** `sha256:` + 12 hex. */
function short(d: string): string {
  return d.slice(0, d.indexOf(':') + 13);
}

/** `2.4s`, `850ms`, `1m05s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return `${m}m${String(s).padStart(2, '0')}s`;
}

type LayerState = 'Waiting' | 'Downloading' | 'Converting' | 'Done' | 'Done (cached)' | 'Retrying' | 'Failed';

interface LayerLine {
  index: number;
  digest: string | null;
  diffId: string | null;
  state: LayerState;
  total: number | null;
  downloaded: number;
  resumeFrom: number;
  downloadStartedAt: number;
  downloadDoneAt: number | null;
  tarBytes: number;
  entries: number;
  materializeStartedAt: number;
  erofsBytes: number | null;
  retry: { attempt: number; delayMs: number } | null;
  /** Non-TTY: when the last progress line for this layer was printed. */
  lastPlainAt: number;
}

export interface ProgressRendererOptions {
  /** Draw live bars (stderr is a TTY). */
  tty: boolean;
  /** `pull.retries` (attempts in all), shown as `n/5`. */
  retries?: number;
  /** Terminal width, for clipping live lines. */
  columns?: number;
  now?: () => number;
  /** Non-TTY progress line interval per layer (docs/cli.md §4: 5 s). */
  plainIntervalMs?: number;
  /** TTY redraw interval (docs/cli.md §4: ≤ 10/s). */
  redrawIntervalMs?: number;
  /** How the image is named in lines (the familiar form); default: the event's canonical reference. */
  displayName?: string;
}

const BAR_WIDTH = 20;

/**
 * Turns events into stderr output. Call `handle(e)` for every event, and `close()` when the
 * operation settles (it stops the redraw timer and leaves the cursor below the live block).
 * Warnings are not printed here: `msb: warning: …` lines go through `warn()` so that `-q` can print
 * them without any progress.
 */
export class ProgressRenderer {
  private readonly layers = new Map<number, LayerLine>();
  private layerCount = 0;
  private liveLines = 0;
  private dirty = false;
  private timer: NodeJS.Timeout | null = null;
  private lastDraw = 0;
  private frozen = false;
  private readonly now: () => number;
  private readonly retries: number;
  private readonly plainInterval: number;
  private readonly redrawInterval: number;
  private stitchOpen = false;

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly opts: ProgressRendererOptions,
  ) {
    this.now = opts.now ?? (() => Date.now());
    this.retries = opts.retries ?? 5;
    this.plainInterval = opts.plainIntervalMs ?? 5000;
    this.redrawInterval = opts.redrawIntervalMs ?? 100;
  }

  private layer(i: number): LayerLine {
    let l = this.layers.get(i);
    if (!l) {
      l = {
        index: i,
        digest: null,
        diffId: null,
        state: 'Waiting',
        total: null,
        downloaded: 0,
        resumeFrom: 0,
        downloadStartedAt: this.now(),
        downloadDoneAt: null,
        tarBytes: 0,
        entries: 0,
        materializeStartedAt: this.now(),
        erofsBytes: null,
        retry: null,
        lastPlainAt: 0,
      };
      this.layers.set(i, l);
    }
    return l;
  }

  private label(l: LayerLine): string {
    const d = l.digest ?? l.diffId;
    return d ? shortDigest(d) : `layer ${l.index + 1}`.padEnd(12);
  }

  private plainPrefix(l: LayerLine): string {
    const d = l.digest ?? l.diffId;
    return `layer ${l.index + 1}/${Math.max(this.layerCount, l.index + 1)}${d ? ' ' + short(d) : ''}`;
  }

  /** A permanent line (above the live block on a TTY). */
  private line(text: string): void {
    if (this.opts.tty) {
      this.clearLive();
      this.out.write(text + '\n');
      this.drawLive();
    } else {
      this.out.write(text + '\n');
    }
  }

  /** `msb: warning: <message>` — printed whatever the mode, above the live block. */
  warn(message: string): void {
    this.line(`msb: warning: ${termSafe(message)}`);
  }

  handle(e: PullEvent): void {
    switch (e.type) {
      case 'resolving':
        if (!this.opts.tty) this.out.write(`resolving ${termSafe(e.reference)}\n`);
        break;
      case 'resolved':
        this.onResolved(e);
        break;
      case 'layerDownloadStarted':
        this.onDownloadStarted(e);
        break;
      case 'layerDownloadProgress':
        this.onDownloadProgress(e);
        break;
      case 'layerDownloadComplete':
        this.onDownloadComplete(e);
        break;
      case 'layerMaterializeStarted': {
        const l = this.layer(e.layerIndex);
        l.diffId = e.diffId;
        l.tarBytes = 0;
        l.entries = 0;
        l.materializeStartedAt = this.now();
        break;
      }
      case 'layerMaterializeProgress':
        this.onMaterializeProgress(e);
        break;
      case 'layerMaterializeComplete':
        this.onMaterializeComplete(e);
        break;
      case 'retry':
        this.onRetry(e);
        break;
      case 'warning':
        this.warn(e.message);
        break;
      case 'stitchStarted':
      case 'stitchComplete':
        this.onStitch(e);
        break;
      case 'complete':
        this.onComplete(e);
        break;
    }
    if (this.opts.tty && !this.frozen) this.schedule();
  }

  private onResolved(e: Ev<'resolved'>): void {
    this.layerCount = e.layerCount;
    const p = e.platform;
    const plat = `${p.os}/${p.architecture}${p.variant ? '/' + p.variant : ''}`;
    const size = e.totalDownloadBytes === null ? '' : `, ${formatSize(e.totalDownloadBytes)}`;
    const layers = `${e.layerCount} layer${e.layerCount === 1 ? '' : 's'}`;
    const from = e.source ? ` from ${e.source}` : '';
    const text = `${this.opts.displayName ?? e.reference} resolved ${short(e.manifestDigest)} (${plat}, ${layers}${size})${from}${e.cached ? ' cached' : ''}`;
    if (!e.cached) for (let i = 0; i < e.layerCount; i++) this.layer(i);
    this.line(termSafe(text));
  }

  private onDownloadStarted(e: Ev<'layerDownloadStarted'>): void {
    const l = this.layer(e.layerIndex);
    l.digest = e.digest;
    l.state = 'Downloading';
    l.total = e.totalBytes;
    l.resumeFrom = e.resumeFrom;
    l.downloaded = e.resumeFrom;
    l.downloadStartedAt = this.now();
    l.downloadDoneAt = null;
    l.retry = null;
    if (this.opts.tty) return;
    l.lastPlainAt = this.now();
    const size = e.totalBytes !== null ? ' ' + formatSize(e.totalBytes) : '';
    const resume = e.resumeFrom > 0 ? ` (resuming at ${formatSize(e.resumeFrom)})` : '';
    this.out.write(`${this.plainPrefix(l)} downloading${size}${resume}\n`);
  }

  private onDownloadProgress(e: Ev<'layerDownloadProgress'>): void {
    const l = this.layer(e.layerIndex);
    l.downloaded = e.downloadedBytes;
    if (e.totalBytes !== null) l.total = e.totalBytes;
    if (l.state === 'Waiting' || l.state === 'Retrying') l.state = 'Downloading';
    if (this.opts.tty || this.now() - l.lastPlainAt < this.plainInterval) return;
    l.lastPlainAt = this.now();
    const total = l.total !== null ? '/' + formatSize(l.total) : '';
    this.out.write(`${this.plainPrefix(l)} downloading ${formatSize(l.downloaded)}${total}\n`);
  }

  private onDownloadComplete(e: Ev<'layerDownloadComplete'>): void {
    const l = this.layer(e.layerIndex);
    l.downloaded = e.downloadedBytes;
    l.downloadDoneAt = this.now();
    l.state = 'Converting';
    if (this.opts.tty) return;
    l.lastPlainAt = this.now();
    const took = formatDuration(this.now() - l.downloadStartedAt);
    this.out.write(`${this.plainPrefix(l)} downloaded ${formatSize(e.downloadedBytes)} in ${took}\n`);
  }

  private onMaterializeProgress(e: Ev<'layerMaterializeProgress'>): void {
    const l = this.layer(e.layerIndex);
    l.tarBytes = e.tarBytes;
    l.entries = e.entries;
    if (this.opts.tty || l.state !== 'Converting' || this.now() - l.lastPlainAt < this.plainInterval) return;
    l.lastPlainAt = this.now();
    this.out.write(`${this.plainPrefix(l)} converting ${formatSize(e.tarBytes)}, ${e.entries} entries\n`);
  }

  private onMaterializeComplete(e: Ev<'layerMaterializeComplete'>): void {
    const l = this.layer(e.layerIndex);
    l.diffId = e.diffId;
    l.erofsBytes = e.erofsSizeBytes;
    l.state = e.reused ? 'Done (cached)' : 'Done';
    if (this.opts.tty) return;
    const took = formatDuration(this.now() - l.materializeStartedAt);
    this.out.write(
      e.reused
        ? `${this.plainPrefix(l)} already present (${formatSize(e.erofsSizeBytes)})\n`
        : `${this.plainPrefix(l)} converted ${formatSize(l.tarBytes)} in ${took}\n`,
    );
  }

  private onRetry(e: Ev<'retry'>): void {
    const when = `${e.attempt}/${this.retries} in ${formatDuration(e.delayMs)}`;
    if (e.layerIndex === null) {
      this.line(`retrying (${when}): ${termSafe(e.reason)}`);
      return;
    }
    const l = this.layer(e.layerIndex);
    l.state = 'Retrying';
    l.retry = { attempt: e.attempt, delayMs: e.delayMs };
    if (!this.opts.tty) this.out.write(`${this.plainPrefix(l)} retrying (${when}): ${termSafe(e.reason)}\n`);
  }

  private onStitch(e: Ev<'stitchStarted'> | Ev<'stitchComplete'>): void {
    if (e.type === 'stitchStarted') {
      if (this.opts.tty) {
        this.drawLive();
        this.freeze();
        this.out.write('Stitching fsmeta + vmdk … ');
        this.stitchOpen = true;
      } else this.out.write(`stitching fsmeta + vmdk (${e.layerCount} layer${e.layerCount === 1 ? '' : 's'})\n`);
    } else if (this.opts.tty) {
      this.out.write(e.reused ? 'done (cached)\n' : 'done\n');
      this.stitchOpen = false;
    } else this.out.write(`stitched fsmeta ${formatSize(e.fsmetaSizeBytes)}${e.reused ? ' (cached)' : ''}\n`);
  }

  private onComplete(e: Ev<'complete'>): void {
    if (this.opts.tty) {
      this.drawLive();
      this.freeze();
    }
    const all = [...this.layers.values()];
    const downloaded = all.filter((l) => l.state === 'Done').reduce((a, l) => a + l.downloaded, 0);
    const fetched = all.filter((l) => l.state === 'Done').length;
    const name = termSafe(this.opts.displayName ?? e.reference);
    const layers = `${e.layerCount} layer${e.layerCount === 1 ? '' : 's'}`;
    const summary = e.cached
      ? `${name}: ${layers}, all cached, in ${formatDuration(e.elapsedMs)}`
      : `${name}: ${layers} (${fetched} downloaded, ${e.layerCount - fetched} cached), ${formatSize(downloaded)} in ${formatDuration(e.elapsedMs)}`;
    this.out.write(summary + '\n');
  }

  /** The operation failed: mark running layers Failed and draw once more. */
  fail(): void {
    for (const l of this.layers.values()) {
      if (l.state !== 'Done' && l.state !== 'Done (cached)' && l.state !== 'Waiting') l.state = 'Failed';
    }
    if (this.opts.tty) {
      if (!this.frozen) {
        this.drawLive();
        this.freeze();
      }
      if (this.stitchOpen) {
        this.out.write('failed\n');
        this.stitchOpen = false;
      }
    }
  }

  close(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.opts.tty && !this.frozen && this.liveLines > 0) {
      this.drawLive();
      this.freeze();
    }
    if (this.stitchOpen) {
      this.out.write('\n');
      this.stitchOpen = false;
    }
  }

  /** Stops managing the live block: its last drawing stays on screen. */
  private freeze(): void {
    this.frozen = true;
    this.liveLines = 0;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private schedule(): void {
    this.dirty = true;
    if (this.timer) return;
    const wait = Math.max(0, this.lastDraw + this.redrawInterval - this.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.dirty && !this.frozen) this.drawLive();
    }, wait);
    this.timer.unref?.();
  }

  private clearLive(): void {
    if (this.liveLines > 0) {
      // Up to the first live line, then clear to the end of the screen.
      this.out.write(`\x1b[${this.liveLines}A\r\x1b[J`);
      this.liveLines = 0;
    }
  }

  private drawLive(): void {
    if (!this.opts.tty || this.frozen) return;
    this.dirty = false;
    this.lastDraw = this.now();
    const rows = [...this.layers.values()].sort((a, b) => a.index - b.index).map((l) => this.renderLayer(l));
    let buf = '';
    if (this.liveLines > 0) buf += `\x1b[${this.liveLines}A\r`;
    const cols = this.opts.columns ?? 0;
    for (const r of rows) buf += '\x1b[2K' + (cols > 0 && r.length >= cols ? r.slice(0, cols - 1) : r) + '\n';
    if (this.liveLines > rows.length) buf += '\x1b[J';
    this.liveLines = rows.length;
    if (buf) this.out.write(buf);
  }

  /** One live line: `e646028a2e6d  Downloading  [=========>          ]  512kB/1.09MB  1.2MB/s`. */
  renderLayer(l: LayerLine): string {
    const id = this.label(l);
    const bar = (frac: number) => {
      const n = Math.max(0, Math.min(BAR_WIDTH, Math.floor(frac * BAR_WIDTH)));
      return '[' + (n >= BAR_WIDTH ? '='.repeat(BAR_WIDTH) : '='.repeat(n) + '>' + ' '.repeat(BAR_WIDTH - n - 1)) + ']';
    };
    const blankBar = ' '.repeat(BAR_WIDTH + 2);
    switch (l.state) {
      case 'Waiting':
        return `${id}  Waiting`;
      case 'Downloading': {
        const secs = (this.now() - l.downloadStartedAt) / 1000;
        const rate = secs > 0.2 ? `  ${formatSize((l.downloaded - l.resumeFrom) / secs)}/s` : '';
        const frac = l.total ? l.downloaded / l.total : 0;
        return `${id}  Downloading  ${l.total ? bar(frac) : blankBar}  ${formatSize(l.downloaded)}${l.total !== null ? '/' + formatSize(l.total) : ''}${rate}`;
      }
      case 'Converting':
        return `${id}  Converting   ${bar(1)}  ${formatSize(l.tarBytes)}  ${l.entries} entries`;
      case 'Retrying': {
        const r = l.retry;
        return `${id}  Retrying (${r ? r.attempt : '?'}/${this.retries} in ${r ? formatDuration(r.delayMs) : '?'})`;
      }
      case 'Done':
        return `${id}  Done         ${blankBar}  ${formatSize(l.downloaded)}${l.erofsBytes !== null ? ` → ${formatSize(l.erofsBytes)} erofs` : ''}`;
      case 'Done (cached)':
        return `${id}  Done         ${blankBar}  (cached)`;
      case 'Failed':
        return `${id}  Failed`;
    }
  }
}
