// OHIF Viewer configuration of this site (served as /ohif/app-config.js; OHIF's sample
// configuration is left out of the build). See docs/web.md, "OHIF Viewer".
//
// - The only data source is this site's DICOMweb (/dicomweb on the same origin, the
//   `dicomweb` function), scoped to the signed-in user's own studies. No `?url=` sources,
//   no dynamic configuration, no local files, no customizations loaded from the URL.
// - No study list (`showStudyList: false`): OHIF's list writes patient names into the page
//   URL; our studies page is the list, and "Open in OHIF" on a study opens
//   /ohif/viewer?StudyInstanceUIDs=<uid>.
// - The ID token of the signed-in user reaches every request as the bearer header through
//   OHIF's userAuthenticationService (window.pacsAuth, /ohif/pacs-auth.js), never `?token=`.
//   window.config is a function: OHIF calls it with its services manager before it
//   registers its services, so the header implementation is installed once the service
//   exists (right after, and again when the data source initialises, before any request).
// - Query flags follow what the dicomweb function implements (docs/dicomweb.md): `*`/`?`
//   wildcards anywhere in names, IDs and descriptions, `fuzzymatching=true`, and
//   `includefield` (attributes of other levels, which OHIF asks for, accepted and absent).
window.config = function pacsOhifConfig({ servicesManager }) {
  var auth = window.pacsAuth;
  if (!auth) throw new Error('pacs-auth.js did not load');
  var root = window.location.origin + '/dicomweb';

  function installAuth() {
    var service = servicesManager && servicesManager.services.userAuthenticationService;
    if (!service) return false;
    service.setServiceImplementation({
      getAuthorizationHeader: function () { return auth.header(); },
      handleUnauthenticated: function () { auth.unauthenticated(); },
    });
    return true;
  }

  return auth.ready.then(function () {
    setTimeout(installAuth, 0);
    return {
      name: 'pacs',
      routerBasename: '/ohif',
      showStudyList: false,
      extensions: [],
      modes: [],
      customizationService: {},
      maxNumberOfWebWorkers: 3,
      showWarningMessageForCrossOrigin: true,
      showCPUFallbackMessage: true,
      showLoadingIndicator: true,
      strictZSpacingForVolumeViewport: true,
      showErrorDetails: 'production',
      maxNumRequests: { interaction: 100, thumbnail: 5, prefetch: 10 },
      defaultDataSourceName: 'pacs',
      dataSources: [
        {
          namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
          sourceName: 'pacs',
          configuration: {
            friendlyName: 'Radiology PACS',
            name: 'pacs',
            wadoUriRoot: root,
            qidoRoot: root,
            wadoRoot: root,
            qidoSupportsIncludeField: true,
            imageRendering: 'wadors',
            thumbnailRendering: 'wadors',
            enableStudyLazyLoad: true,
            supportsFuzzyMatching: true,
            supportsWildcard: true,
            supportsReject: false,
            supportsStow: false,
            dicomUploadEnabled: false,
            staticWado: false,
            singlepart: false,
            omitQuotationForMultipartRequest: true,
            bulkDataURI: { enabled: true, relativeResolution: 'studies' },
            onConfiguration: function (configuration) {
              installAuth();
              return configuration;
            },
          },
        },
      ],
      httpErrorHandler: function (error) {
        // Status only: answers can name studies.
        console.warn('DICOMweb request failed', error && error.status);
      },
    };
  });
};
