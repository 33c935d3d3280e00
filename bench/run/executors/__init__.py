"""Executors run one build point (a build and its query sweep) somewhere.

``local`` isolates every build in its own worker process (time limit, memory
cap, crash isolation); ``inline`` runs in the calling process, for debugging
with ``--debug`` and pdb. A Ray executor can implement the same ``run_build``.
"""
