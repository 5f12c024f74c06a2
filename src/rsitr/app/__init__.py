"""The application: wires the library into DVC stages, Prefect flows and the served search; alone knows artifact paths."""

import rsitr.methods  # noqa: F401 - registers the built-in methods before any params are read
