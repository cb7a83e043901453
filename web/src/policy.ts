// The privacy policy's plain text as blocks: a short line without final punctuation is a
// heading, anything else a paragraph.

export interface Block {
  kind: 'title' | 'heading' | 'paragraph';
  text: string;
}

export function policyBlocks(text: string): Block[] {
  const parts = text.replace(/\r\n/g, '\n').split(/\n\s*\n/).map((p) => p.trim()).filter(Boolean);
  return parts.map((p, i) => {
    const single = !p.includes('\n');
    const heading = single && p.length <= 70 && !/[.:;,!?]$/.test(p) && !/^(Effective date|Last updated)/i.test(p);
    if (i === 0 && heading) return { kind: 'title', text: p };
    return { kind: heading ? 'heading' : 'paragraph', text: p.replace(/\n/g, ' ') };
  });
}

/** The policy's version: the date of its "Effective date: YYYY-MM-DD" line (the functions
 * read the same line: functions/pacs/settings.py policy_version_of). */
export function policyVersionOf(text: string): string {
  const match = /^Effective date:\s*(\d{4}-\d{2}-\d{2})\s*$/m.exec(text.replace(/\r\n/g, '\n'));
  if (!match) throw new Error("the privacy policy has no 'Effective date: YYYY-MM-DD' line");
  return match[1];
}

/** /.well-known/security.txt (RFC 9116): where to report a vulnerability, as the policy
 * asks ("if you discover a vulnerability, contact us"). ``contact`` is the configured one
 * (PACS_SECURITY_CONTACT at build time: a mailto: or https: URI, or an email), else the
 * policy's own contact address; it expires a year after the build. */
export function securityTxt(policy: string, contact: string | undefined, built: Date,
  policyUrl?: string): string {
  let uri = (contact ?? '').trim();
  if (!uri) {
    const email = /[\w.+-]+@[\w-]+(?:\.[\w-]+)+/.exec(policy)?.[0];
    if (!email) throw new Error('no security contact: set PACS_SECURITY_CONTACT (the policy names no email)');
    uri = email;
  }
  if (!/^(mailto:|https:)/.test(uri)) uri = `mailto:${uri}`;
  const expires = new Date(built.getTime() + 365 * 24 * 3600 * 1000);
  const lines = [`Contact: ${uri}`, `Expires: ${expires.toISOString().replace(/\.\d{3}Z$/, 'Z')}`,
    'Preferred-Languages: en'];
  if (policyUrl) lines.push(`Policy: ${policyUrl}`);
  return lines.join('\n') + '\n';
}
