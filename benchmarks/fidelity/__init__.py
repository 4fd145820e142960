"""The pieces of ``benchmarks/real_fidelity.py`` (issue 16.2): which methods run and how
(:mod:`.methods`), the resumable work directory (:mod:`.store`), the metrics of one photo
(:mod:`.metrics`), the run loop with progress (:mod:`.runner`), aggregation, tables and goals
(:mod:`.summary`) and the plot (:mod:`.plot`).

Not a benchmark script itself (``python -m benchmarks`` only runs the top-level modules).
"""
