import { describe, expect, it } from 'vitest';
import { securityTxt } from '../src/policy';

const POLICY = 'Privacy Policy\n\nEffective date: 2026-02-08\n\nContact us at privacy@radiologypacs.app.\n';
const BUILT = new Date('2026-12-06T12:00:00Z');

describe('security.txt', () => {
  it("names the policy's contact and expires a year after the build", () => {
    expect(securityTxt(POLICY, undefined, BUILT)).toBe(
      'Contact: mailto:privacy@radiologypacs.app\nExpires: 2027-12-06T12:00:00Z\nPreferred-Languages: en\n');
  });
  it('takes the configured contact, as an email or a URI', () => {
    expect(securityTxt(POLICY, 'security@example.org', BUILT)).toMatch(/^Contact: mailto:security@example.org\n/);
    expect(securityTxt(POLICY, 'https://example.org/report', BUILT)).toMatch(/^Contact: https:\/\/example.org\/report\n/);
  });
  it('refuses to build without any contact', () => {
    expect(() => securityTxt('no address here', '', BUILT)).toThrow(/PACS_SECURITY_CONTACT/);
  });
});
