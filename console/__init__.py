"""The operator's console: a status page, the analytics charts and rq-dashboard, behind CONSOLE_TOKEN."""
