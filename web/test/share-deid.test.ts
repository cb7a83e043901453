import { describe, expect, it } from 'vitest';
import { LEFT_OUT_TEXT, leftOutLines, tooLargeText } from '../src/views/share-deid';

describe('de-identified share: what the copy leaves out, as the owner reads it', () => {
  it('counts each reason, singular or plural, largest first, and skips zeros', () => {
    expect(leftOutLines({ ultrasound: 1, secondary_capture: 3, burned_in_annotation: 0 })).toEqual([
      '3 secondary captures (screenshots or scans)', '1 ultrasound image']);
    expect(leftOutLines({})).toEqual([]);
    expect(leftOutLines(undefined)).toEqual([]);
  });
  it('names every reason the server gives (pacs.dicom.deidentify and the copy runs)', () => {
    for (const reason of ['burned_in_annotation', 'ultrasound', 'secondary_capture', 'unreadable',
      'too_large', 'object_missing']) {
      expect(LEFT_OUT_TEXT[reason]).toBeDefined();
    }
    expect(leftOutLines({ something_new: 2 })).toEqual(['2 something_new']);
  });
  it('states the bounds the server gives when a study is too large (not a number of its own)', () => {
    const over = { instances: null, copied: 0, left_out: {}, fits: false };
    expect(tooLargeText({ ...over, max_instances: 5000, max_gib: 8 })).toContain(
      'at most 5,000 images and 8 GiB');
    expect(tooLargeText(over)).toBe('This study is too large for a de-identified copy. '
      + 'Share fewer images, or untick "De-identified copy" to share the full study.');
  });
});
