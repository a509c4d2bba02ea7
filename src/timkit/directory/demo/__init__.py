"""The demo data of the FHIR-Directory: :mod:`.generate` streams a realistic synthetic
directory (``timkit directory generate``, the local run's seed, the benchmarks); its German
reference tables (names, streets, cities, regions, medical services) are the JSON files in
``data/``."""
