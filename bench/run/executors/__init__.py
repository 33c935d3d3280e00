"""Executors run one build point (a build and its query sweep) somewhere.

``local`` isolates every build in its own worker process (time limit, memory
cap, crash isolation); ``inline`` runs in the calling process, for debugging
with ``--debug`` and pdb; ``ray`` runs each as a Ray task holding a node's
``bench_slot``. All three speak the same message stream, which bench.run.dispatch
consumes, several build points at once where the executor offers more than one slot.
"""
