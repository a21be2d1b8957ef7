"""mathsite's benchmark suite (issue 4): ``python -m bench.run`` or ``make bench``."""
