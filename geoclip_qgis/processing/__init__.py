"""Processing provider and algorithms: the one code path for every capability."""
