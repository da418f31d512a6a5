"""Side-by-side benchmarks against peer libraries (see bench/README.md)."""
