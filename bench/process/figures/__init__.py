"""Built-in figures: one module per figure family, discovered by bench.process.registry."""
