import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isShareUrl, ohifUrl, readShare, saveShareView, SHARE_TOKEN_KEY, SHARE_VIEW_KEY,
  viewExpiry } from '../src/ohif-access';
import { shareKind, shareViews, VIEW_REFRESH_AHEAD_MS } from '../ohif/share';
import { TokenHolder } from '../ohif/token';

/** A view string as functions/pacs/links/shares.py's make_view writes it. */
function view(expiresMs: number, number = 1): string {
  return `${'0123456789abcdef0123'}.${number}.${Math.floor(expiresMs / 1000)}.${'f'.repeat(32)}`;
}

/** The tab's sessionStorage (Vitest runs in Node: a Map behind the Storage calls used). */
class TabStorage {
  private items = new Map<string, string>();
  getItem(k: string) { return this.items.get(k) ?? null; }
  setItem(k: string, v: string) { this.items.set(k, String(v)); }
  removeItem(k: string) { this.items.delete(k); }
}

const g = globalThis as unknown as { window?: unknown };
beforeEach(() => { g.window = { sessionStorage: new TabStorage() }; });
afterEach(() => { delete g.window; });

describe('OHIF for a share recipient', () => {
  it('is asked for by a flag in the URL, never the token', () => {
    expect(ohifUrl('1.2.3')).toBe('/ohif/viewer?StudyInstanceUIDs=1.2.3');
    expect(ohifUrl('1.2.3', true)).toBe('/ohif/viewer?StudyInstanceUIDs=1.2.3&share=1');
    expect(isShareUrl('?StudyInstanceUIDs=1.2.3&share=1')).toBe(true);
    expect(isShareUrl('?StudyInstanceUIDs=1.2.3')).toBe(false);
    expect(isShareUrl('?share=yes')).toBe(false);
  });

  it('reads a view\'s expiry, 0 when it is not a view', () => {
    expect(viewExpiry(view(1_800_000_000_000))).toBe(1_800_000_000_000);
    expect(viewExpiry('not-a-view')).toBe(0);
    expect(viewExpiry(`${view(1_800_000_000_000)}x`)).toBe(0);
  });

  it('uses the view the share page holds while it is valid, and exchanges once after', async () => {
    let now = 1_000_000_000;
    const held = view(now + 300_000, 1);
    const storage = (g.window as { sessionStorage: TabStorage }).sessionStorage;
    storage.setItem(SHARE_TOKEN_KEY, 'tok');
    saveShareView(held);
    const exchanged: string[] = [];
    let next = view(now + 600_000, 2);
    const fetchView = shareViews('tok', async (t) => { exchanged.push(t); return next; }, () => now);
    const holder = new TokenHolder(fetchView, () => now, shareKind('tok'));
    await holder.refresh(false);
    expect(exchanged).toEqual([]); // opening OHIF from the share page counts no view
    expect(holder.header()).toEqual({ Authorization: `Share tok ${held}` });
    now += 300_000 - VIEW_REFRESH_AHEAD_MS + 1000; // the view is about to expire
    expect(holder.header().Authorization).toBe(`Share tok ${held}`); // still valid: sent as is
    holder.header();
    await holder.refresh(false);
    expect(exchanged).toEqual(['tok']); // one new view for both requests
    expect(holder.header().Authorization).toBe(`Share tok ${next}`);
    expect(readShare()).toEqual({ token: 'tok', view: next }); // kept for the tab
    // A share that is gone (revoked, expired, used up) gives no view: no headers at all.
    next = null as unknown as string;
    now += 600_000;
    await holder.refresh(false);
    expect(holder.header()).toEqual({});
    expect(storage.getItem(SHARE_VIEW_KEY)).toBeNull();
  });
});
