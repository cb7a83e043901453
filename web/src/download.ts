// "Download (ZIP)" on the study page: the browser cannot put the ID token on a plain
// download, a ZIP fetched by script would sit whole in the page's memory, and a token in a
// URL would leak into history and logs. So the page asks the DICOMweb function for a
// single-use, two-minute link (POST /dicomweb/studies/{uid}/download-link with the token)
// and hands that link to the browser's download manager. The link points at the
// function's own URL, which streams the ZIP without Hosting's 60 s cut (docs/dicomweb.md).
import { ApiError } from './api';
import { getBackend } from './firebase';

export interface DownloadLink {
  url: string;
  expires_at: string;
}

/** The DICOMweb path that makes a download link for a study. */
export function downloadLinkPath(studyInstanceUid: string): string {
  return `/dicomweb/studies/${encodeURIComponent(studyInstanceUid)}/download-link`;
}

/** Ask for a study's single-use ZIP link (the signed-in owner's ID token goes in a header). */
export async function requestDownloadLink(studyInstanceUid: string): Promise<DownloadLink> {
  const user = getBackend().auth.currentUser;
  if (!user) throw new ApiError(401, 'missing_token', 'sign in first');
  let resp: Response;
  try {
    resp = await fetch(downloadLinkPath(studyInstanceUid), {
      method: 'POST', credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer',
      headers: { Accept: 'application/json', Authorization: `Bearer ${await user.getIdToken()}` },
    });
  } catch {
    throw new ApiError(0, 'network', 'network error');
  }
  const data = await resp.json().catch(() => undefined);
  if (!resp.ok || typeof data?.url !== 'string') {
    throw new ApiError(resp.status, data?.error ?? `http_${resp.status}`,
      data?.message ?? `HTTP ${resp.status}`);
  }
  return data as DownloadLink;
}

/** Start the browser's download of the link (the answer is an attachment: the page stays). */
export function startDownload(url: string): void {
  const a = document.createElement('a');
  a.href = url;
  a.rel = 'noopener noreferrer';
  a.style.display = 'none';
  document.body.append(a);
  a.click();
  a.remove();
}
