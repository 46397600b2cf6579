"""Hardware meters. One file per backend; :func:`probe` (in ``probe.py``) picks what this machine has."""
