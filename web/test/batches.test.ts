import { describe, expect, it } from 'vitest';
import { BATCH_FILES, checkAnswer, takeBatch } from '../src/upload/batches';

describe('upload batches', () => {
  it('takes the first files that fit, by count and by bytes, and always at least one', () => {
    const sizes = Array.from({ length: 1000 }, () => 1000);
    expect(takeBatch(sizes, (n) => n)).toHaveLength(BATCH_FILES);
    expect(takeBatch(sizes, (n) => n, 7)).toHaveLength(7);
    expect(takeBatch([400, 400, 400, 50], (n) => n, 10, 1000)).toEqual([400, 400]);
    expect(takeBatch([5000, 1], (n) => n, 10, 1000)).toEqual([5000]);
    expect(takeBatch([], (n: number) => n)).toEqual([]);
  });
  it('accepts an answer only with a session for every file', () => {
    const one = { upload_id: 'u1', session_url: 'https://s/1', batch: 'b' };
    expect(checkAnswer({ uploads: [one] }, 1)).toEqual([one]);
    expect(() => checkAnswer({ uploads: [one] }, 2)).toThrow(/every file/);
    expect(() => checkAnswer({ uploads: [{ upload_id: 'u1' }] }, 1)).toThrow();
    expect(() => checkAnswer(null, 1)).toThrow();
  });
});
