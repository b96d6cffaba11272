"""A real SMTP server on loopback for the email tests: Debian's aiosmtpd.

Run under /usr/bin/python3 (where python3-aiosmtpd is installed):
  smtp_server.py --port P --out DIR [--cert C --key K] [--user U --password P]
                 [--stall-first-data]
Each accepted message is written to DIR/NNN.eml, with DIR/NNN.json holding
the envelope (from, recipients), whether the session was over TLS and who
logged in. --cert/--key offer STARTTLS and require it before MAIL; --user
requires AUTH (LOGIN or PLAIN) after STARTTLS. --stall-first-data writes
DIR/in-data once the first message's data arrived and never answers it, so
that a test can kill the server mid-delivery. Prints "ready" once listening.
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--stall-first-data", action="store_true")
    a = ap.parse_args()
    state = {"stalled": False}

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            if a.stall_first_data and not state["stalled"]:
                state["stalled"] = True
                with open(os.path.join(a.out, "in-data"), "w") as f:
                    f.write("1")
                await asyncio.sleep(3600)
            n = len([x for x in os.listdir(a.out) if x.endswith(".eml")])
            base = os.path.join(a.out, "%03d" % (n + 1))
            with open(base + ".json", "w") as f:
                json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                           "tls": session.ssl is not None,
                           "login": (session.auth_data.login.decode()
                                     if isinstance(session.auth_data, LoginPassword)
                                     else None)}, f)
            with open(base + ".eml.tmp", "wb") as f:
                f.write(envelope.original_content)
            os.rename(base + ".eml.tmp", base + ".eml")
            return "250 OK: queued"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and
              auth_data.login.decode() == a.user and auth_data.password.decode() == a.password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    kw = {}
    if a.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        kw.update(tls_context=ctx, require_starttls=True)
    if a.user:
        kw.update(authenticator=authenticator, auth_required=True,
                  auth_require_tls=bool(a.cert))
    else:
        kw.update(auth_require_tls=False)
    c = Controller(Handler(), hostname="127.0.0.1", port=a.port, **kw)
    c.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()


if __name__ == "__main__":
    sys.exit(main())
