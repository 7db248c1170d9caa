"""Brian2 microcircuits of value and error neurons (built from the same ``PCSpec``).

The circuit builders arrive with the Brian2 microcircuits issue; this package imports
nothing heavy at import time.
"""
