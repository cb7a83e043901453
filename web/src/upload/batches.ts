// Starting a folder's uploads in batches: one POST /uploads {files: [...]} reserves up to
// BATCH_FILES files (the function allows PACS_UPLOAD_BATCH_MAX, 250 by default) and
// answers with a session for each, or refuses the whole batch with a reason (a quota or an
// hourly rate). One request per batch instead of one per file, and the server checks the
// limits once for all of them.

export const BATCH_FILES = 200;
/** Bytes per batch: a batch's sessions wait, reserved, while earlier files are sent. */
export const BATCH_BYTES = 2 * 1024 ** 3;
/** Reserve the next batch when fewer reserved files than this are left to send. */
export const LOW_WATER = 20;

/** Refusals caused by one file of a batch: its files are then started one by one, so each
 *  gets its own answer. */
export const PER_FILE_CODES = new Set(['bad_filename', 'bad_size', 'too_large', 'bad_content_type']);

export interface StartedUpload {
  upload_id: string;
  session_url: string;
  batch?: string;
  object?: string;
}

/** The first items, in order, that fit in one batch (at least one, whatever its size). */
export function takeBatch<T>(items: T[], sizeOf: (item: T) => number,
  maxFiles = BATCH_FILES, maxBytes = BATCH_BYTES): T[] {
  const out: T[] = [];
  let bytes = 0;
  for (const item of items) {
    if (out.length >= maxFiles) break;
    const size = sizeOf(item);
    if (out.length > 0 && bytes + size > maxBytes) break;
    out.push(item);
    bytes += size;
  }
  return out;
}

/** The answer of a batch request, checked: one started upload per file, in order. */
export function checkAnswer(answer: unknown, files: number): StartedUpload[] {
  const uploads = (answer as { uploads?: unknown } | null)?.uploads;
  if (!Array.isArray(uploads) || uploads.length !== files
    || !uploads.every((u) => typeof u?.upload_id === 'string' && typeof u?.session_url === 'string')) {
    throw new Error('The upload service answered without a session for every file.');
  }
  return uploads as StartedUpload[];
}
