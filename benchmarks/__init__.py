"""Load, latency, throughput and quality benchmarks; nothing imports this package."""
