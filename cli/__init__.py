"""`wahooks`: the operator's command line."""
