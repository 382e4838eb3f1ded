"""DataJoint table definitions, one module per database schema.

``acquisition`` (what was recorded), ``params`` (parameter sets and what is selected), ``analysis``
(clean LFP, band power, preprocessed BOLD), ``relations`` (maps and the LFP-BOLD relationships per
scan) and ``cohort`` (statistics across scans). Nothing connects at import: :func:`lfpbold.connect`
activates the schemas under a prefix.
"""
