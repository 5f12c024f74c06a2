"""Infrastructure of the application: artifact paths, atomic files, locks, run records,
fingerprints, step records and the Prefect cache policy."""
