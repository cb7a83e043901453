// A series as one dwv image whose slices are filled in as they arrive, in any order.
//
// dwv builds a series by appending each decoded slice to the image (Image.appendSlice): the
// first slice shows at once, but every slice that lands below others moves all of them in
// memory, so filling a series from the slice on screen outwards costs time quadratic in its
// length. Here the image is allocated once for the whole window of slices, at the positions
// the manifest gives, and each decoded slice is copied into its place; slices not yet in are
// black. Rescale slope and intercept can differ per slice (PET, some MR): dwv keeps them per
// slice only for slices appended in order, so this image answers them itself. Window presets
// from the headers are kept per slice the way appendSlice keeps them (a preset whose window
// differs between slices becomes `perslice`, one window per slice).
import { equalWl, Geometry, Image, Point3D, RescaleSlopeAndIntercept, Size, Spacing, type Index,
  type WindowLevel } from 'dwv';

type Vec = [number, number, number];
/** dwv's window presets (image meta `windowPresets`), as its view reads them. */
type Presets = Record<string, { name?: string; wl?: WindowLevel[]; perslice?: boolean }>;

export class Volume {
  readonly image: Image;
  readonly slices: number;
  private readonly sliceSize: number;
  private readonly rsis: RescaleSlopeAndIntercept[];
  private readonly baseRsi: RescaleSlopeAndIntercept;
  private readonly filled: Uint8Array;
  private constantRsi = true;
  private identityRsi: boolean;
  private range = { min: Infinity, max: -Infinity };
  private rescaledRange = { min: Infinity, max: -Infinity };
  private readonly presets: Presets;
  loaded = 0;

  /** A volume of `origins.length` slices shaped like `template`: one decoded slice, or
   *  another volume (a new window of the same series). */
  constructor(template: Image | Volume, origins: Vec[], uids: string[]) {
    const first = template instanceof Volume ? template.image : template;
    const geometry = first.getGeometry();
    const size = geometry.getSize();
    const spacing = geometry.getSpacing();
    this.slices = origins.length;
    this.sliceSize = template instanceof Volume ? template.sliceSize : first.getBuffer().length;
    const gap = origins.length > 1 ? Math.hypot(origins[1][0] - origins[0][0], origins[1][1] - origins[0][1],
      origins[1][2] - origins[0][2]) : spacing.get(2);
    const volumeGeometry = new Geometry(origins.map(([x, y, z]) => new Point3D(x, y, z)),
      new Size([size.get(0), size.get(1), this.slices]),
      new Spacing([spacing.get(0), spacing.get(1), gap || 1]), geometry.getOrientation());
    const Ctor = first.getBuffer().constructor as new (n: number) => ReturnType<Image['getBuffer']>;
    this.image = new Image(volumeGeometry, new Ctor(this.sliceSize * this.slices), uids);
    this.image.setPhotometricInterpretation(first.getPhotometricInterpretation());
    this.image.setPlanarConfiguration(first.getPlanarConfiguration());
    if (first.getPaletteColourMap()) this.image.setPaletteColourMap(first.getPaletteColourMap());
    // The header presets, each with the template's (first) window; dwv's view adds its own.
    const theirs = (first.getMeta().windowPresets ?? {}) as Presets;
    this.presets = Object.fromEntries(Object.entries(theirs).filter(([, p]) => p.wl?.length)
      .map(([key, p]) => [key, { name: p.name, wl: [p.wl![0]] }]));
    this.image.setMeta({ ...first.getMeta(), numberOfFiles: this.slices, windowPresets: this.presets });
    this.baseRsi = template instanceof Volume ? template.baseRsi : first.getRescaleSlopeAndIntercept();
    this.rsis = new Array(this.slices).fill(this.baseRsi);
    this.identityRsi = this.baseRsi.isID();
    this.filled = new Uint8Array(this.slices);
    const image = this.image;
    image.isConstantRSI = () => this.constantRsi;
    image.isIdentityRSI = () => this.identityRsi;
    image.getRescaleSlopeAndIntercept = (index?: Index) =>
      this.constantRsi || !index ? this.baseRsi : this.rsis[image.getSecondaryOffset(index)] ?? this.baseRsi;
    // dwv computes the data range once, over the whole buffer (the default window of images
    // without one in their header covers it): here most of it has not arrived, and a scan of a
    // big volume would delay the first image. The range is that of the slices in.
    image.getDataRange = () => this.range;
    image.getRescaledDataRange = () => this.rescaledRange;
    if (template instanceof Volume) {
      this.range = { ...template.range };
      this.rescaledRange = { ...template.rescaledRange };
    }
    // The geometry is final: dwv computes the slice spacing from the origins now.
    image.setComplete(true);
  }

  /** Bytes one slice takes. */
  get sliceBytes(): number {
    return this.sliceSize * this.image.getBuffer().BYTES_PER_ELEMENT;
  }

  has(k: number): boolean {
    return this.filled[k] === 1;
  }

  /** Why `slice` (one decoded slice) cannot go into this volume, or null. */
  misfit(slice: Image): string | null {
    const size = slice.getGeometry().getSize();
    const mine = this.image.getGeometry().getSize();
    if (size.length() > 3 && size.get(3) > 1) return 'a multi-frame image in a series of several';
    if (size.get(0) !== mine.get(0) || size.get(1) !== mine.get(1) || slice.getBuffer().length !== this.sliceSize) {
      return 'an image of another size than the rest of the series';
    }
    if (slice.getBuffer().constructor !== this.image.getBuffer().constructor ||
      slice.getPhotometricInterpretation() !== this.image.getPhotometricInterpretation()) {
      return 'an image of another pixel format than the rest of the series';
    }
    return null;
  }

  /** Copy `slice` into place `k` (check misfit first). */
  place(k: number, slice: Image): void {
    this.image.getBuffer().set(slice.getBuffer(), k * this.sliceSize);
    this.setRsi(k, slice.getRescaleSlopeAndIntercept());
    for (const [key, p] of Object.entries((slice.getMeta().windowPresets ?? {}) as Presets)) {
      if (p.wl?.[0]) this.setWindow(key, k, p.wl[0]);
    }
    const range = slice.getDataRange();
    const rescaled = slice.getRescaledDataRange();
    this.range = { min: Math.min(this.range.min, range.min), max: Math.max(this.range.max, range.max) };
    this.rescaledRange = { min: Math.min(this.rescaledRange.min, rescaled.min),
      max: Math.max(this.rescaledRange.max, rescaled.max) };
    if (!this.filled[k]) this.loaded += 1;
    this.filled[k] = 1;
  }

  /** Copy slice `from` of `other` (same shape) into place `k`. */
  copyFrom(other: Volume, from: number, k: number): void {
    const size = this.sliceSize;
    this.image.getBuffer().set(other.image.getBuffer().subarray(from * size, (from + 1) * size), k * size);
    this.setRsi(k, other.rsis[from]);
    for (const [key, p] of Object.entries(other.presets)) {
      const wl = p.wl?.[p.perslice ? from : 0];
      if (wl) this.setWindow(key, k, wl);
    }
    if (!this.filled[k]) this.loaded += 1;
    this.filled[k] = 1;
  }

  /** Tell dwv the pixels changed, so that the slice on screen is drawn again. */
  redraw(): void {
    this.image.setAtOffsets([], this.image.getNumberOfComponents() === 1 ? 0 : { r: 0, g: 0, b: 0 } as never);
  }

  /** The window of preset `key` at slice `k` (as dwv's appendSlice does). */
  private setWindow(key: string, k: number, wl: WindowLevel): void {
    const preset = this.presets[key];
    if (!preset?.wl) return;
    if (!preset.perslice) {
      if (equalWl(preset.wl[0], wl)) return;
      preset.perslice = true;
      preset.wl = new Array(this.slices).fill(preset.wl[0]);
    }
    preset.wl[k] = wl;
  }

  private setRsi(k: number, rsi: RescaleSlopeAndIntercept): void {
    this.rsis[k] = rsi;
    // dwv's view rebuilds its lookup tables when isConstantRSI changes.
    if (!rsi.equals(this.baseRsi)) this.constantRsi = false;
    this.identityRsi = this.identityRsi && rsi.isID();
  }
}
