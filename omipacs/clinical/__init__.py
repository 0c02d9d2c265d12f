"""Clinical data: NBSS records, outcomes, longitudinal episodes, statistics and cohorts.

* :mod:`~omipacs.clinical.models`: the tables (client, episode, event, screen read,
  lesion, finding, density, image feature, study link, tally, cohort);
* :mod:`~omipacs.clinical.nbss`: one NBSS-style record read and de-identified with the
  image pseudonyms and date shift; :mod:`~omipacs.clinical.sanitize` for the fields not
  modelled;
* :mod:`~omipacs.clinical.importer`: ``import_records`` (one transaction per client);
* :mod:`~omipacs.clinical.classify`: the omidb outcome rules, pure;
* :mod:`~omipacs.clinical.imaging` and :mod:`~omipacs.clinical.linking`: images folded
  into clients and studies linked to episodes; :mod:`~omipacs.clinical.timeline`;
* :mod:`~omipacs.clinical.tally` and :mod:`~omipacs.clinical.stats`: the brochure's
  tables;
* :mod:`~omipacs.clinical.cohorts`: filters, saved cohorts, the DICOMweb restriction;
* :mod:`~omipacs.clinical.demo`: NBSS records for the demo images.
"""
