"""Served search: gallery indexes that follow a registry alias (``gallery``) and the HTTP service (``serve``)."""
