"""The synthetic demo data set: OMI-DB-like images, NBSS records and expert marks.

Everything made up lives here (:mod:`~omipacs.demo.generate` plans clients and studies,
:mod:`~omipacs.demo.factory` builds the images, :mod:`~omipacs.demo.clinical` their NBSS
records, :mod:`~omipacs.demo.marks` their marks, :mod:`~omipacs.demo.load` puts them in
an archive through the same doors real data use). The archive's own packages never
import it.
"""
