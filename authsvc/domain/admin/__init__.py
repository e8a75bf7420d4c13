"""The operators' use cases (AdminService): who may call them (authz.py), and
users, clients, sessions, keys and the audit log as an admin sees them."""
