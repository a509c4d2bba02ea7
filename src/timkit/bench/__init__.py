"""Benchmarks (``timkit bench …``): a composition-layer peer of :mod:`timkit.runtime`.

One module per benchmark (:mod:`.up`, :mod:`.provision`, :mod:`.directory`,
:mod:`.directory_proxy`, :mod:`.proxy`, :mod:`.push`) on one harness (:mod:`.harness`:
child processes, health polling, :class:`~.harness.Latency` and :class:`~.harness.Rate`
with one percentile definition) and :mod:`.machine` (the report's machine line). Benchmarks
measure; they never assert timings. No component contains benchmark code.
"""
