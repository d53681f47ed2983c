"""The pack's own subcommands of ``lightning-grda`` (``export``, ``tune-c``, ``diagnose``), one module each.

Each is thin: it parses its arguments, calls plain functions of the pack that do the work (and that a notebook
can call and a test can check), and prints with rich. :data:`lightning_grda.cli.COMMANDS` lists them.
"""
