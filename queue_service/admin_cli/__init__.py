"""`queue-admin`: the operator's command line, built on jobqueue.AdminClient."""
