"""Expert ROI marks: OMI-DB mark records and DICOM SR (TID 1500), both ways, searchable.

* :mod:`~omipacs.annotations.records`: mark records read and checked
  (``parse_mark_record``, ``records_from_imagedb``, ``load_mark_file``);
* :mod:`~omipacs.annotations.codes`: the vocabulary and its SR codes;
* :mod:`~omipacs.annotations.sr_write` and :mod:`~omipacs.annotations.sr_read`: marks
  to a Measurement Report (highdicom) and back;
* :mod:`~omipacs.annotations.importer`: ``import_marks``, one SR per image and reader
  stored through the ingest pipeline;
* :mod:`~omipacs.annotations.indexer`: ``SrMarkIndexer``, every stored SR's marks into
  the ``mark`` table (:mod:`~omipacs.annotations.models`);
* :mod:`~omipacs.annotations.search`: ``search_marks``, ``marks_for_study``, and the
  cohort and statistics facts; :mod:`~omipacs.annotations.lesions`: linked lesions;
* :mod:`~omipacs.annotations.draw`: boxes on rendered pictures;
* :mod:`~omipacs.annotations.archive`: the parts of an archive the importer and the
  indexer use.

Marks read the clinical tables (outcomes, lesions), never the reverse; the demo's marks
are made in :mod:`omipacs.demo.marks`.
"""
