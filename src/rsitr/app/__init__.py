"""The application: wires the library into DVC stages, Prefect flows and the served search; alone knows artifact paths.

* ``core/``: artifact paths, atomic files, locks, run records, fingerprints, step records, cache policy;
* ``steps/``: the data stages and model steps (keywords, pretrain, train, evaluate, c2f, register, ...);
* ``flows.py``: the Prefect flows over the steps;
* ``serving/``: gallery indexes and the HTTP search service.
"""

import rsitr.methods  # noqa: F401 - registers the built-in methods before any params are read
