"""Evidence with seeds: ``tailface reproduce`` and ``tailface study``.

- :mod:`~tailface.evidence.cells`: the models (one experiment config per model, seed and profile);
- :mod:`~tailface.evidence.targets`: the tables and figures as records (name, title, models,
  claims, writer) in one registry, one file per target;
- :mod:`~tailface.evidence.reproduce`: trains the cells the targets need and writes each target's
  ``OUT/<name>.md`` and ``OUT/<name>.json``; :mod:`~tailface.evidence.study`: the one-page answer
  on a user's own data;
- :mod:`~tailface.evidence.tables` (the shared tables and their numbers),
  :mod:`~tailface.evidence.stats` (mean +- std, paired intervals, verdicts),
  :mod:`~tailface.evidence.parallel` (several cells at once),
  :mod:`~tailface.evidence.superclasses` (the super classes' quality).

Nothing is imported here: importing one module does not load the others.
"""
