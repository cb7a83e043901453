// The DICOM viewer: dwv (canvas 2D, decoders for JPEG baseline/extended/lossless, JPEG 2000
// and RLE in module workers). JPEG-LS and deflated files, which dwv cannot read, are fetched
// here and rewritten as Explicit VR Little Endian in a worker first (src/dicom/).
// Tools: window/level, zoom/pan, scroll; keyboard equivalents.
import { App, AppOptions, ToolConfig, ViewConfig, WindowLevel } from 'dwv';
import { needsTranscode } from '../dicom/transcode';
import { fetchSeries, type SeriesItem } from './fetch-series';
import { Transcoder } from './transcoder';

export type Tool = 'WindowLevel' | 'ZoomAndPan' | 'Scroll';

/** Transfer syntaxes the browser viewer decodes (dwv's decoders plus the uncompressed ones). */
const DECODABLE = new Set([
  '1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2',
  '1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.57',
  '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91',
  '1.2.840.10008.1.2.5',
]);

export const TRANSFER_SYNTAX_NAMES: Record<string, string> = {
  '1.2.840.10008.1.2': 'Implicit VR little endian',
  '1.2.840.10008.1.2.1': 'Explicit VR little endian',
  '1.2.840.10008.1.2.1.99': 'Deflated',
  '1.2.840.10008.1.2.2': 'Explicit VR big endian',
  '1.2.840.10008.1.2.4.50': 'JPEG baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG extended',
  '1.2.840.10008.1.2.4.57': 'JPEG lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS near-lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE lossless',
};

export function canDecode(transferSyntax: string | undefined): boolean {
  return !transferSyntax || DECODABLE.has(transferSyntax) || needsTranscode(transferSyntax);
}

export interface ViewerEvents {
  onProgress?: (percent: number) => void;
  onLoaded?: () => void;
  onError?: (message: string) => void;
  onChange?: (state: { slice: number; slices: number; center?: number; width?: number }) => void;
}

let counter = 0;

export class DicomViewer {
  readonly element: HTMLElement;
  private app: App;
  private loaded = false;
  private divId: string;
  private fetching?: AbortController;
  private transcoder?: Transcoder;

  constructor(private events: ViewerEvents = {}) {
    counter += 1;
    this.divId = `layerGroup${counter}`;
    this.element = document.createElement('div');
    this.element.id = this.divId;
    this.element.className = 'dwv-layer-group';
    this.element.tabIndex = 0;
    this.element.setAttribute('role', 'img');
    this.element.setAttribute('aria-label', 'DICOM image. Arrow keys: previous or next image; + and -: zoom; W, S: contrast; A, D: brightness.');
    this.app = new App();
    const options = new AppOptions({ '*': [new ViewConfig(this.divId)] });
    options.tools = { WindowLevel: new ToolConfig(), ZoomAndPan: new ToolConfig(), Scroll: new ToolConfig() };
    this.app.init(options);
    this.app.addEventListener('loadprogress', (e: { loaded: number }) => this.events.onProgress?.(e.loaded));
    this.app.addEventListener('load', () => {
      this.loaded = true;
      this.app.setTool('WindowLevel');
      // dwv shows whichever slice arrived first while the series loads; once it is whole,
      // open at the first image so every viewing starts at the same place.
      this.goTo(0);
      this.emit();
      this.events.onLoaded?.();
    });
    this.app.addEventListener('error', (e: { error?: Error }) => {
      this.events.onError?.(e.error?.message ?? 'the images could not be read');
    });
    this.app.addEventListener('wlchange', () => this.emit());
    this.app.addEventListener('positionchange', () => this.emit());
    this.element.addEventListener('keydown', (e) => this.onKey(e));
    window.addEventListener('resize', this.onResize);
  }

  private onResize = () => {
    if (this.loaded) this.app.fitToContainer();
  };

  load(items: SeriesItem[]): void {
    this.loaded = false;
    this.fetching?.abort();
    this.fetching = undefined;
    this.app.abortAllLoads();
    this.app.reset();
    if (!items.some((i) => needsTranscode(i.transferSyntax))) {
      this.app.loadURLs(items.map((i) => i.url));
      return;
    }
    const fetching = (this.fetching = new AbortController());
    this.transcoder ??= new Transcoder();
    const transcoder = this.transcoder;
    void fetchSeries(items, { signal: fetching.signal, transcode: (b) => transcoder.transcode(b),
      onProgress: (p) => this.events.onProgress?.(p) }).then(({ buffers, failures }) => {
      if (fetching.signal.aborted) return;
      if (failures.length) {
        this.events.onError?.(`${failures.length} of ${items.length} images could not be converted for the browser (${[...new Set(failures)].join('; ')})`);
      }
      if (buffers.length) {
        this.app.loadImageObject(buffers.map((data, i) => ({ name: `${i}`, filename: `${i}.dcm`, data })));
      }
    }, (err) => {
      if (!fetching.signal.aborted) this.events.onError?.(err instanceof Error ? err.message : String(err));
    });
  }

  setTool(tool: Tool): void {
    if (this.loaded) this.app.setTool(tool);
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

  scroll(delta: number): void {
    const vc = this.controller();
    if (!vc || !vc.canScroll()) return;
    const dim = vc.getScrollDimIndex();
    const index = vc.getCurrentIndex();
    const next = delta > 0 ? index.next(dim) : index.previous(dim);
    const size = vc.getImageSize().get(dim);
    const value = next.get(dim) ?? -1;
    if (value >= 0 && value < size) vc.setCurrentIndex(next);
  }

  goTo(slice: number): void {
    const vc = this.controller();
    if (!vc || !vc.canScroll()) return;
    const dim = vc.getScrollDimIndex();
    const values = vc.getCurrentIndex().getValues();
    values[dim] = slice;
    const index = new (vc.getCurrentIndex().constructor as any)(values);
    vc.setCurrentIndex(index);
  }

  state(): { slice: number; slices: number; center?: number; width?: number } {
    const vc = this.controller();
    if (!vc) return { slice: 0, slices: 0 };
    const dim = vc.getScrollDimIndex();
    const slices = vc.canScroll() ? vc.getImageSize().get(dim) : 1;
    const slice = vc.canScroll() ? (vc.getCurrentIndex().get(dim) ?? 0) : 0;
    const wl = vc.canWindowLevel() ? vc.getWindowLevel() : undefined;
    return { slice, slices, center: wl?.center, width: wl?.width };
  }

  private emit(): void {
    this.events.onChange?.(this.state());
  }

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

  destroy(): void {
    window.removeEventListener('resize', this.onResize);
    this.fetching?.abort();
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
