"""Benchmarks of cartkeeper: ``python -m bench.run`` (see ``bench/README.md``)."""
