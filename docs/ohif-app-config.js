/**
 * OHIF v3 viewer configuration for an omipacs archive.
 *
 * Save as `app-config.js` at the root of a built OHIF viewer (the `dist/` of the `@ohif/app`
 * npm package, or your own build) and set OMIPACS_DICOMWEB to the archive's DICOMweb base URL:
 * the `[http]` host, port and `base_path` of its config.toml. Tested with @ohif/app 3.12.10
 * by tests/e2e/ohif_check.py, which serves this very file.
 *
 * The viewer may be served from another origin once that origin is listed in the
 * archive's `[http] cors_origins` (empty by default: no cross-origin access), e.g.
 * `cors_origins = ["https://viewer.example.org"]`: omipacs then answers CORS preflights,
 * sends `Access-Control-Allow-Origin` and `Cross-Origin-Resource-Policy: cross-origin` so a
 * cross-origin-isolated OHIF page can load its responses. Or serve both from one origin
 * behind a reverse proxy.
 *
 * With `[auth] mode = "token"`, point OMIPACS_DICOMWEB at a licence's read-only root,
 * `https://archive.example.org/licences/{id}/dicom-web`, and open the viewer as
 * `/viewer?StudyInstanceUIDs=<uid>&token=<token>` with a token bound to that licence
 * (`omipacs token create --user EMAIL --licence ID`): OHIF sends it as
 * `Authorization: Bearer` with every request, removes it from the address bar and keeps
 * it for the study list reached from the viewer. OHIF 3.12 reads `token` on the viewer
 * route only, not on the study list (`/`). Without a token the archive answers 401.
 */

/** The archive's DICOMweb base URL (no trailing slash). */
const OMIPACS_DICOMWEB = 'http://127.0.0.1:8042/dicom-web';

window.config = {
  routerBasename: '/',
  extensions: [],
  modes: [],
  showStudyList: true,
  maxNumberOfWebWorkers: 3,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: true,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  // Frames are small, independent requests; HTTP/1.1 allows 6 per origin anyway.
  maxNumRequests: { interaction: 100, thumbnail: 75, prefetch: 25 },
  defaultDataSourceName: 'omipacs',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'omipacs',
      configuration: {
        friendlyName: 'omipacs',
        name: 'omipacs',
        // QIDO-RS, WADO-RS and STOW-RS all live under one base URL (PS3.18 §8).
        qidoRoot: OMIPACS_DICOMWEB,
        wadoRoot: OMIPACS_DICOMWEB,
        // omipacs serves no WADO-URI; OHIF only uses this root for 'wadouri' rendering,
        // which this configuration does not ask for.
        wadoUriRoot: OMIPACS_DICOMWEB,
        // omipacs honours includefield (and includefield=all) at every level.
        qidoSupportsIncludeField: true,
        // Pixels come from WADO-RS frames (…/frames/N); thumbnails are rendered in the
        // browser from the same frames, so nothing is fetched twice.
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        // Open a study with QIDO series + one /series/{uid}/metadata per series, not one
        // whole-study /metadata: the first image shows before the whole study is read.
        enableStudyLazyLoad: true,
        // Study-list filters: OHIF sends typed text as *text*, which omipacs matches as a
        // substring (`*` and `?`, PS3.4 C.2.2.2.4): case-insensitively for Patient Name,
        // case-sensitively (as the standard says) for MRN, accession and description.
        // omipacs's fuzzymatching (each typed word starts a name component) is narrower
        // than *text*, so leave it off.
        supportsWildcard: true,
        supportsFuzzyMatching: false,
        // omipacs has no dcm4chee-style reject endpoint.
        supportsReject: false,
        // The Upload button would send files with STOW-RS (POST {wadoRoot}/studies). omipacs
        // de-identifies STOW uploads by default (`[http] stow_deidentify = true`); a viewer
        // that saves SRs made against the archive's own UIDs needs it false, and then an
        // upload whose PatientName/PatientID is not an existing pseudonym is refused. Keep
        // uploads off so files are not dropped into the archive from a browser.
        dicomUploadEnabled: false,
        // Bulk data and video are fetched as single-part bodies, not multipart/related.
        singlepart: 'bulkdata,video,pdf',
        // Accept: multipart/related; type=application/octet-stream (unquoted; omipacs takes
        // the quoted form as well).
        omitQuotationForMultipartRequest: true,
        // Frames come in their stored transfer syntax (`transfer-syntax=*`). Do not set
        // requestTransferSyntaxUID to HTJ2K (1.2.840.10008.1.2.4.202): omipacs cannot encode
        // it and answers 406.
        // BulkDataURIs in omipacs metadata are absolute (built from the request, or from
        // X-Forwarded-* behind a reverse proxy); nothing needs rewriting.
        bulkDataURI: { enabled: true },
      },
    },
  ],
};
