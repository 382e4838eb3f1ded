"""DataJoint table definitions: acquisition (what was recorded), params, analysis and cohort.

Nothing connects at import: :func:`lfpbold.connect` activates the schemas under a prefix.
"""
