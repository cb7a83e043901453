// What was dropped or picked: files, folders (walked recursively) and ZIPs, each with its
// path, and what kind of content it is by its first bytes (as the server decides).

export interface PickedFile {
  file: File;
  path: string;
}

export type Kind = 'dicom' | 'zip' | 'other';

export function kindOfHeader(head: Uint8Array): Kind {
  if (head.length >= 132 && head[128] === 0x44 && head[129] === 0x49 && head[130] === 0x43
    && head[131] === 0x4d) return 'dicom';
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03
    && head[3] === 0x04) return 'zip';
  return 'other';
}

export function contentTypeFor(kind: Kind): string {
  return kind === 'dicom' ? 'application/dicom' : kind === 'zip' ? 'application/zip'
    : 'application/octet-stream';
}

export async function sniff(file: Blob): Promise<Kind> {
  const head = new Uint8Array(await file.slice(0, 132).arrayBuffer());
  return kindOfHeader(head);
}

/** Hidden files and folders (".DS_Store", ".git/…") are never uploaded. */
export function isHidden(path: string): boolean {
  return path.split('/').some((part) => part.startsWith('.'));
}

interface Entry {
  isFile: boolean;
  isDirectory: boolean;
  name: string;
  fullPath: string;
  file?: (ok: (f: File) => void, err: (e: unknown) => void) => void;
  createReader?: () => { readEntries: (ok: (e: Entry[]) => void, err: (e: unknown) => void) => void };
}

async function walk(entry: Entry, out: PickedFile[]): Promise<void> {
  const path = entry.fullPath.replace(/^\//, '');
  if (isHidden(path)) return;
  if (entry.isFile && entry.file) {
    const file = await new Promise<File>((ok, err) => entry.file!(ok, err));
    out.push({ file, path });
  } else if (entry.isDirectory && entry.createReader) {
    const reader = entry.createReader();
    // readEntries returns at most 100 entries per call: read until empty.
    while (true) {
      const batch = await new Promise<Entry[]>((ok, err) => reader.readEntries(ok, err));
      if (batch.length === 0) break;
      for (const child of batch) await walk(child, out);
    }
  }
}

export async function filesFromDataTransfer(dt: DataTransfer): Promise<PickedFile[]> {
  const out: PickedFile[] = [];
  const entries: Entry[] = [];
  for (const item of Array.from(dt.items ?? [])) {
    if (item.kind !== 'file') continue;
    const entry = (item as DataTransferItem & { webkitGetAsEntry?: () => Entry | null })
      .webkitGetAsEntry?.();
    if (entry) entries.push(entry);
    else {
      const f = item.getAsFile();
      if (f) out.push({ file: f, path: f.name });
    }
  }
  for (const entry of entries) await walk(entry, out);
  if (out.length === 0 && dt.files) {
    for (const f of Array.from(dt.files)) out.push({ file: f, path: f.name });
  }
  return out;
}

export function filesFromInput(list: FileList | null): PickedFile[] {
  const out: PickedFile[] = [];
  for (const f of Array.from(list ?? [])) {
    const path = (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;
    if (!isHidden(path)) out.push({ file: f, path });
  }
  return out;
}
