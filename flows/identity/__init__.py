"""Who is acting (issue 10): the gate every act passes (``gate``: member by id, token, roles)
and the acts on members' tokens (``members``: issue, revoke). Import the modules themselves:
the shell imports ``gate``, and ``members`` imports the shell."""
