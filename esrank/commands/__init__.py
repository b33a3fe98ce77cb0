"""Click commands; ``cli.py`` at the top level assembles them into the ``esrank`` group."""
