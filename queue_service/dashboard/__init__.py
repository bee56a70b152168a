"""`queue-service dashboard`: a small web app for operators over AdminService.

It calls the server only through jobqueue.AdminClient with the signed-in operator's own admin
token, so it works against any replica, every write is audited under that token's name, and it
never opens the database itself.
"""
