"""Small shared pieces: atomic files, paths, lazy imports, machine facts, top-k metrics, figures."""
