"""prepflow's mail, by role (imported by module, so this package costs nothing to import):

- ``outbox_plan``: message effects → outbox rows (recipients, idempotency keys, payload JSON)
- ``render``: an outbox row → the email (payload validated, templates, headers, .ics)
- ``wording``: dates, instants, zones and meeting modes as a message words them
- ``fastmime``: the fast MIME build, and the public-API build it is tested against
- ``invitation``: RFC 5545 iTIP calendars for meetings
- ``mail_transport``: the ``Mailer`` seam: aiosmtplib pool and a recording double
- ``delivery``: draining the outbox, a crash losing nothing (claim, send, record, retry, recover)
- ``leases``: a delivery run's lease, and when another run is dead
- ``sink``: local aiosmtpd servers for rehearsals, tests and the benchmark
"""
