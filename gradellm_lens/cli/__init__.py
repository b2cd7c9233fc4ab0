"""Command-line interface: ``gradellm-lens <command>`` (see :mod:`.main`)."""
