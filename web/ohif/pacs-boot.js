// First script of /ohif/index.html. OHIF's index.html did this in inline scripts, which
// this site's Content-Security-Policy does not run: the public URL of the app (/ohif/, where
// its chunks, workers and codecs are) and the helper OHIF uses to import modules by URL.
// It also drops a `token` query parameter before OHIF reads it: OHIF would send a token taken
// from the URL as the bearer of every request; ours comes only from the signed-in session
// (pacs-auth.js), and tokens never travel in URLs.
window.PUBLIC_URL = '/ohif/';
window.browserImportFunction = function (url) {
  return import(url);
};
(function () {
  var url = new URL(window.location.href);
  if (url.searchParams.has('token')) {
    url.searchParams.delete('token');
    window.history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
})();
