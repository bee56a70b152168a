"""The sweep's tasks, one a module; registry.py lists them in the order a sweep runs them."""
