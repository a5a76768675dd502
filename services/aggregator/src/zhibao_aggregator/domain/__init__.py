"""The aggregator's pure domain: rollup arithmetic, no I/O."""
