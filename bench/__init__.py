"""``make bench``: authsvc's figures beside ceilings measured in the same run.

``python -m bench`` runs everything and writes ``bench/results/latest.md``;
``bench/README.md`` explains the method.
"""
