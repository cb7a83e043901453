// The DICOM viewer: dwv (canvas 2D, decoders for JPEG baseline/extended/lossless, JPEG 2000
// and RLE in module workers). Tools: window/level, zoom/pan, scroll; keyboard equivalents;
// the mouse wheel moves through the images in every tool.
//
// The viewer fetches a series itself (fetch-series.ts): the image on screen first and alone,
// then the rest nearest first, so the first image shows as soon as its own bytes are in. Each
// file is cut after its data set (dicom/trailer.ts: dwv would parse trailing zero bytes as
// hundreds of thousands of elements), and JPEG-LS and deflated files, which dwv cannot read,
// are rewritten as Explicit VR Little Endian in a worker first (src/dicom/). dwv decodes each
// file on its own; the slice is copied into one volume (volume.ts) that holds the series, or
// as much of it as the memory budget allows (plan.ts), and dwv's copy is dropped.
import { App, AppOptions, DicomData, ToolConfig, ViewConfig, WindowLevel, type Image } from 'dwv';
import { trimTrailer } from '../dicom/trailer';
import { needsTranscode } from '../dicom/transcode';
import { SliceFetcher, type SeriesItem } from './fetch-series';
import { pixelBudgetBytes, sliceCapacity, sliceOrigins, windowAround } from './plan';
import { Transcoder } from './transcoder';
import { Volume } from './volume';

export type { SeriesItem } from './fetch-series';
export type Tool = 'WindowLevel' | 'ZoomAndPan' | 'Scroll';

export { canDecode, TRANSFER_SYNTAX_NAMES } from './syntaxes';

export interface ViewerState {
  /** The image on screen, in the series' viewing order, and how many the series has. */
  slice: number;
  slices: number;
  /** The image on screen has not arrived yet (it shows black until it does). */
  pending?: boolean;
  center?: number;
  width?: number;
}

export interface LoadCount {
  /** Images in (of those held: the whole series, or the window around the image on screen). */
  loaded: number;
  held: number;
  /** The images held, [start, end) in viewing order, of `total`. */
  window: [number, number];
  total: number;
  failed: number;
}

export interface ViewerEvents {
  onProgress?: (percent: number) => void;
  onCount?: (count: LoadCount) => void;
  /** Every image held has arrived (or failed). */
  onLoaded?: () => void;
  onError?: (message: string) => void;
  onChange?: (state: ViewerState) => void;
}

/** One series being shown: what is fetched, held and on screen. */
interface Session {
  id: number;
  items: SeriesItem[];
  /** The images held, [start, end) in viewing order. */
  window: [number, number];
  /** How many images the memory budget holds (estimated from the manifest until one is
   *  decoded). */
  capacity: number;
  /** The image on screen (or wanted there), in viewing order. */
  current: number;
  fetcher?: SliceFetcher;
  volume?: Volume;
  /** The dwv data on screen: the volume, or one image as dwv decoded it (the only object of
   *  its series, or a multi-frame one). */
  dataId?: string;
  /** The dwv data of the volume (shown once its first slice is in). */
  volumeId?: string;
  single?: boolean;
  failures: Map<string, number>;
  complete: boolean;
}

const TEMP_NAME = /^s(\d+)-(\d+)\.dcm$/;
let counter = 0;
let sessions = 0;

export class DicomViewer {
  readonly element: HTMLElement;
  private app: App;
  private divId: string;
  private session?: Session;
  private tool: Tool = 'WindowLevel';
  private transcoder?: Transcoder;
  private wheelSum = 0;
  private moveTimer = 0;
  /** dwv reports its initial position while a data is put on screen: not a move. */
  private showing = false;
  private budget = pixelBudgetBytes((navigator as Navigator & { deviceMemory?: number }).deviceMemory);

  constructor(private events: ViewerEvents = {}) {
    counter += 1;
    this.divId = `layerGroup${counter}`;
    this.element = document.createElement('div');
    this.element.id = this.divId;
    this.element.className = 'dwv-layer-group';
    this.element.tabIndex = 0;
    this.element.setAttribute('role', 'img');
    this.element.setAttribute('aria-label', 'DICOM image. Mouse wheel or arrow keys: previous or next image; + and -: zoom; W, S: contrast; A, D: brightness.');
    this.app = new App();
    // No view for data by default: each file is decoded as data of its own, and only the
    // volume (or a single image) gets a view (show()).
    const options = new AppOptions({});
    options.tools = { WindowLevel: new ToolConfig(), ZoomAndPan: new ToolConfig(), Scroll: new ToolConfig() };
    this.app.init(options);
    this.app.addEventListener('load', (e: { dataid: string; source?: unknown }) => this.onDecoded(e));
    this.app.addEventListener('error', (e: { source?: unknown; error?: Error }) => this.onDecodeError(e));
    this.app.addEventListener('loadend', (e: { dataid: string }) => this.onDecodeEnd(e));
    this.app.addEventListener('wlchange', () => this.emit());
    this.app.addEventListener('positionchange', () => this.onPosition());
    this.element.addEventListener('keydown', (e) => this.onKey(e));
    // Capture: before dwv's tools, which zoom or do nothing with the wheel.
    this.element.addEventListener('wheel', this.onWheel, { capture: true, passive: false });
    window.addEventListener('resize', this.onResize);
  }

  private onResize = () => {
    if (this.session?.dataId) this.app.fitToContainer();
  };

  /** Show a series (`items` in viewing order) from its first image. */
  load(items: SeriesItem[]): void {
    this.stop();
    const estimate = (items[0]?.rows ?? 512) * (items[0]?.columns ?? 512) * 2;
    const s: Session = { id: (sessions += 1), items, window: [0, 0], current: 0,
      capacity: sliceCapacity(estimate, this.budget), failures: new Map(), complete: false };
    this.session = s;
    if (!items.length) return;
    s.window = windowAround(items.length, 0, s.capacity);
    this.fetchMissing(s);
    this.emit();
  }

  /** Fetch what the window lacks, the image on screen first. */
  private fetchMissing(s: Session): void {
    s.fetcher?.cancel();
    s.complete = false;
    const indices: number[] = [];
    for (let i = s.window[0]; i < s.window[1]; i += 1) {
      if (!s.volume?.has(i - s.window[0])) indices.push(i);
    }
    const fetcher = new SliceFetcher({ items: s.items, indices, first: s.current,
      prepare: (item, body) => this.prepare(item, body),
      onSlice: (index, buffer) => this.decode(s, index, buffer),
      onFailure: (_index, reason) => this.fail(s, reason) });
    s.fetcher = fetcher;
    void fetcher.run();
    this.count(s);
  }

  private async prepare(item: SeriesItem, body: ArrayBuffer): Promise<ArrayBuffer> {
    if (needsTranscode(item.transferSyntax)) {
      this.transcoder ??= new Transcoder();
      body = await this.transcoder.transcode(body);
    }
    return trimTrailer(body).buffer;
  }

  /** dwv decodes the file as data of its own (synchronously when uncompressed, in its
   *  workers otherwise); onDecoded takes the image from it. */
  private decode(s: Session, index: number, buffer: ArrayBuffer): void {
    if (this.session !== s) return;
    const name = `s${s.id}-${index}.dcm`;
    this.app.loadImageObject([{ name, filename: name, data: buffer }]);
  }

  /** The series index of a decoded file of the current session (dwv passes the file list,
   *  or the file name, as the event's source). */
  private sessionIndex(source: unknown): number | undefined {
    const name = Array.isArray(source) ? source[0]?.filename : source;
    const match = typeof name === 'string' ? TEMP_NAME.exec(name) : null;
    if (!match || Number(match[1]) !== this.session?.id) return undefined;
    return Number(match[2]);
  }

  private onDecoded(e: { dataid: string; source?: unknown }): void {
    const s = this.session;
    const index = this.sessionIndex(e.source);
    if (!s || index === undefined) return;
    const image = this.app.getData(e.dataid)?.image;
    if (!image) {
      this.fail(s, 'not an image');
      return;
    }
    if (!s.volume && !s.single) this.start(s, image, e.dataid);
    const volume = s.volume;
    if (!volume || !s.volumeId) return;
    const k = index - s.window[0];
    if (k < 0 || k >= volume.slices) return; // it arrived after the window moved on
    const misfit = volume.misfit(image);
    if (misfit) {
      this.fail(s, misfit);
      return;
    }
    volume.place(k, image);
    if (s.dataId !== s.volumeId) {
      // The first slice: shown now that its pixels are in (dwv sets the default window).
      this.show(s, s.volumeId);
    } else if (index === s.current) {
      volume.redraw();
      this.emit();
    }
    this.count(s);
  }

  private onDecodeError(e: { source?: unknown; error?: Error }): void {
    const s = this.session;
    if (s && this.sessionIndex(e.source) !== undefined) this.fail(s, e.error?.message ?? 'the image could not be read');
  }

  /** dwv's copy of a decoded file is dropped once its slice is in the volume. */
  private onDecodeEnd(e: { dataid: string }): void {
    if (e.dataid !== this.session?.dataId) this.app.abortLoad(e.dataid);
  }

  /** The first decoded image of a series: show it as it is, or start the volume. */
  private start(s: Session, image: Image, dataId: string): void {
    const size = image.getGeometry().getSize();
    if (s.items.length === 1 || (size.length() > 3 && size.get(3) > 1)) {
      s.single = true;
      s.fetcher?.cancel();
      if (s.items.length > 1) this.fail(s, 'several multi-frame images in one series (the first is shown)', s.items.length - 1);
      this.show(s, dataId);
      this.count(s);
      return;
    }
    const capacity = sliceCapacity(image.getBuffer().length * image.getBuffer().BYTES_PER_ELEMENT, this.budget);
    const window = windowAround(s.items.length, s.current, capacity);
    s.capacity = capacity;
    const moved = window[0] !== s.window[0] || window[1] !== s.window[1];
    s.window = window;
    this.hold(s, image);
    if (moved) this.fetchMissing(s);
  }

  /** A volume for the session's window, with what the volume `template` (at
   *  `previousWindow`) held of it; shown by the caller. */
  private hold(s: Session, template: Image | Volume, previousWindow?: [number, number]): void {
    const [start, end] = s.window;
    const entries = s.items.slice(start, end);
    const geometry = (template instanceof Volume ? template.image : template).getGeometry();
    const o = geometry.getOrigin();
    const m = geometry.getOrientation();
    const { origins } = sliceOrigins(entries.map((e) => ({ ImagePositionPatient: e.position,
      ImageOrientationPatient: e.orientation })), { origin: [o.getX(), o.getY(), o.getZ()],
      normal: [m.get(0, 2) ?? 0, m.get(1, 2) ?? 0, m.get(2, 2) ?? 1], spacing: 1 });
    const volume = new Volume(template, origins, entries.map((e, k) => e.id ?? `${start + k}`));
    if (template instanceof Volume && previousWindow) {
      for (let i = Math.max(start, previousWindow[0]); i < Math.min(end, previousWindow[1]); i += 1) {
        if (template.has(i - previousWindow[0])) volume.copyFrom(template, i - previousWindow[0], i - start);
      }
    }
    s.volume = volume;
    if (s.volumeId && s.volumeId !== s.dataId) this.app.abortLoad(s.volumeId); // never shown
    s.volumeId = this.app.getNextDataId();
    const data = new DicomData({});
    data.image = volume.image;
    this.app.addData(s.volumeId, data);
  }

  /** Put dwv data on screen in place of what was there, at the session's image. */
  private show(s: Session, dataId: string): void {
    const wl = this.controller()?.canWindowLevel() ? this.controller()!.getWindowLevel() : undefined;
    if (s.dataId) {
      this.app.removeDataViewConfig(s.dataId, this.divId);
      this.app.abortLoad(s.dataId);
    }
    s.dataId = dataId;
    this.showing = true;
    try {
      this.app.addDataViewConfig(dataId, new ViewConfig(this.divId));
    } finally {
      this.showing = false;
    }
    this.app.setTool(this.tool);
    if (wl) this.controller()?.setWindowLevel(wl);
    if (!s.single) this.setIndex(s.current - s.window[0]);
    this.emit();
  }

  private fail(s: Session, reason: string, n = 1): void {
    if (this.session !== s) return;
    s.failures.set(reason, (s.failures.get(reason) ?? 0) + n);
    const failed = [...s.failures.values()].reduce((a, b) => a + b, 0);
    this.events.onError?.(`${failed} of ${s.items.length} images could not be shown (${[...s.failures.keys()].join('; ')})`);
    this.count(s);
  }

  private count(s: Session): void {
    if (this.session !== s) return;
    const failed = [...s.failures.values()].reduce((a, b) => a + b, 0);
    const held = s.single ? 1 : s.window[1] - s.window[0];
    const loaded = s.single ? 1 : s.volume?.loaded ?? 0;
    this.events.onCount?.({ loaded, held, window: s.window, total: s.items.length, failed });
    this.events.onProgress?.(Math.round((100 * Math.min(held, loaded + failed)) / Math.max(1, held)));
    if (!s.complete && loaded + failed >= held) {
      s.complete = true;
      this.events.onLoaded?.();
    }
  }

  setTool(tool: Tool): void {
    this.tool = tool;
    if (this.session?.dataId) this.app.setTool(tool);
  }

  private controller() {
    return this.app.getActiveLayerGroup()?.getActiveViewLayer()?.getViewController();
  }

  /** Change window center/width by a step (keyboard and button equivalents of dragging). */
  adjustWindow(dCenter: number, dWidthFactor: number): void {
    const vc = this.controller();
    if (!vc || !vc.canWindowLevel()) return;
    const wl = vc.getWindowLevel();
    vc.setWindowLevel(new WindowLevel(wl.center + dCenter * Math.max(1, wl.width / 20),
      Math.max(1, wl.width * dWidthFactor)));
  }

  resetWindow(): void {
    this.controller()?.resetWindowLevel();
  }

  resetView(): void {
    this.app.resetZoomPan();
    this.controller()?.resetWindowLevel();
  }

  zoom(step: number): void {
    const rect = this.element.getBoundingClientRect();
    this.app.zoom(step, rect.width / 2, rect.height / 2);
  }

  /** The next (delta > 0) or previous image. */
  scroll(delta: number): void {
    const s = this.session;
    if (!s) return;
    if (s.single) {
      // One multi-frame object: its frames.
      const vc = this.controller();
      if (!vc || !vc.canScroll()) return;
      const dim = vc.getScrollDimIndex();
      const index = vc.getCurrentIndex();
      const next = delta > 0 ? index.next(dim) : index.previous(dim);
      const value = next.get(dim) ?? -1;
      if (value >= 0 && value < vc.getImageSize().get(dim)) vc.setCurrentIndex(next);
      return;
    }
    this.goTo(s.current + Math.sign(delta));
  }

  /** Go to image `slice` (viewing order) of the series; it shows once its bytes are in. */
  goTo(slice: number): void {
    const s = this.session;
    if (!s || s.single) {
      if (s?.single) this.setIndex(slice);
      return;
    }
    const target = Math.max(0, Math.min(s.items.length - 1, slice));
    if (target === s.current) return;
    const direction = target > s.current ? 1 : -1;
    s.current = target;
    s.fetcher?.focus(target);
    window.clearTimeout(this.moveTimer);
    if (target < s.window[0] || target >= s.window[1]) {
      // Outside what is held: hold the window around it instead, once the person stops
      // (dragging the slider across a long series would allocate a window per step).
      this.moveTimer = window.setTimeout(() => this.moveWindow(s, direction), 100);
    } else {
      this.setIndex(target - s.window[0]);
    }
    this.emit();
  }

  private moveWindow(s: Session, direction: 1 | -1): void {
    if (this.session !== s || (s.current >= s.window[0] && s.current < s.window[1])) return;
    const previousWindow = s.window;
    s.window = windowAround(s.items.length, s.current, s.capacity, direction);
    if (s.volume && s.volumeId) {
      this.hold(s, s.volume, previousWindow);
      this.show(s, s.volumeId);
    }
    this.fetchMissing(s);
    this.emit();
  }

  /** Put dwv's view at index `k` of the data on screen. */
  private setIndex(k: number): void {
    const vc = this.controller();
    if (!vc || !vc.canScroll()) return;
    const dim = vc.getScrollDimIndex();
    const current = vc.getCurrentIndex();
    if (current.get(dim) === k) return;
    const values = current.getValues();
    values[dim] = k;
    vc.setCurrentIndex(new (current.constructor as new (v: number[]) => typeof current)(values));
  }

  /** dwv moved (its scroll tool, or setIndex): follow it. */
  private onPosition(): void {
    const s = this.session;
    const vc = this.controller();
    if (this.showing) return;
    if (s && !s.single && s.volume && vc?.canScroll()) {
      const k = vc.getCurrentIndex().get(vc.getScrollDimIndex()) ?? 0;
      s.current = s.window[0] + k;
      s.fetcher?.focus(s.current);
    }
    this.emit();
  }

  state(): ViewerState {
    const s = this.session;
    const vc = this.controller();
    const wl = vc?.canWindowLevel() ? vc.getWindowLevel() : undefined;
    if (!s) return { slice: 0, slices: 0 };
    if (s.single) {
      const dim = vc?.getScrollDimIndex();
      const slices = vc?.canScroll() && dim !== undefined ? vc.getImageSize().get(dim) : 1;
      const slice = vc?.canScroll() && dim !== undefined ? vc.getCurrentIndex().get(dim) ?? 0 : 0;
      return { slice, slices, center: wl?.center, width: wl?.width };
    }
    const pending = !s.volume?.has(s.current - s.window[0]);
    return { slice: s.current, slices: s.items.length, pending, center: wl?.center, width: wl?.width };
  }

  private emit(): void {
    this.events.onChange?.(this.state());
  }

  /** One step per notch of a mouse wheel; trackpads' small deltas add up (as dwv's own
   *  scroll tool counts them). Down is the next image, as in other diagnostic viewers. */
  private onWheel = (e: WheelEvent) => {
    e.preventDefault();
    e.stopPropagation();
    const notch = (e as WheelEvent & { wheelDeltaY?: number }).wheelDeltaY;
    const spin = typeof notch === 'number' && Math.abs(notch) > 45 ? -Math.sign(notch)
      : e.deltaMode === WheelEvent.DOM_DELTA_PIXEL ? e.deltaY / 60 : Math.sign(e.deltaY);
    this.wheelSum += spin;
    if (Math.abs(this.wheelSum) < 1) return;
    const delta = Math.sign(this.wheelSum);
    this.wheelSum = 0;
    this.scroll(delta);
  };

  private onKey(e: KeyboardEvent): void {
    const keys: Record<string, () => void> = {
      ArrowUp: () => this.scroll(-1), ArrowLeft: () => this.scroll(-1),
      ArrowDown: () => this.scroll(1), ArrowRight: () => this.scroll(1),
      '+': () => this.zoom(0.1), '=': () => this.zoom(0.1), '-': () => this.zoom(-0.1),
      w: () => this.adjustWindow(0, 0.8), s: () => this.adjustWindow(0, 1.25),
      a: () => this.adjustWindow(-1, 1), d: () => this.adjustWindow(1, 1),
      r: () => this.resetView(),
    };
    const fn = keys[e.key];
    if (fn) {
      e.preventDefault();
      fn();
    }
  }

  /** Leave the series: cancel what is in flight and drop what is held. */
  private stop(): void {
    const s = this.session;
    this.session = undefined;
    if (!s) return;
    s.fetcher?.cancel();
    if (s.dataId) {
      this.app.removeDataViewConfig(s.dataId, this.divId);
      this.app.abortLoad(s.dataId);
    }
    if (s.volumeId && s.volumeId !== s.dataId) this.app.abortLoad(s.volumeId);
    s.volume = undefined;
  }

  destroy(): void {
    window.removeEventListener('resize', this.onResize);
    window.clearTimeout(this.moveTimer);
    this.stop();
    this.transcoder?.terminate();
    try {
      this.app.abortAllLoads();
      this.app.reset();
    } catch {
      /* already gone */
    }
    this.element.remove();
  }
}
