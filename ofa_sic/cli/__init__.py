"""The `ofa-sic` console script: `main.py` dispatches to one module per subcommand."""
