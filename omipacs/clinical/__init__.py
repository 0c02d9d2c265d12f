"""Clinical data: NBSS records, outcomes, longitudinal episodes and statistics.

* :mod:`~omipacs.clinical.models`: the tables (client, episode, event, screen read,
  lesion, finding, density, image feature, study link, tally);
* :mod:`~omipacs.clinical.nbss`: one NBSS-style record read and de-identified with the
  image pseudonyms and date shift; :mod:`~omipacs.clinical.sanitize` for the fields not
  modelled;
* :mod:`~omipacs.clinical.importer`: ``import_records`` (one transaction per client);
* :mod:`~omipacs.clinical.classify`: the omidb outcome rules, pure;
* :mod:`~omipacs.clinical.imaging` and :mod:`~omipacs.clinical.linking`: images folded
  into clients and studies linked to episodes; :mod:`~omipacs.clinical.timeline`;
* :mod:`~omipacs.clinical.tally` and :mod:`~omipacs.clinical.stats`: the brochure's
  tables.

Cohorts (:mod:`omipacs.cohorts`) filter on these tables and on the marks, and sit above
both; the demo's NBSS records are made in :mod:`omipacs.demo.clinical`. Nothing here
imports either.
"""
