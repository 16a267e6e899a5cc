"""RQ jobs that turn Meta's webhook bodies into messages, orders and exact daily analytics."""
