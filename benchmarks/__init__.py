"""Speed and fidelity benchmarks (scripts, not tests); results in benchmarks/README.md."""
