"""A real SMTP server for tests/email.rs, on aiosmtpd (Debian: python3-aiosmtpd).

Usage: smtp_server.py [plain | implicit-tls CERT KEY | starttls CERT KEY].
Listens on 127.0.0.1 on a free port, prints {"port": N} and then one JSON
line per accepted message. Accepts AUTH (over plain SMTP, which aiosmtpd
allows only when told to) and records the login; refuses mail to
refused@example.com with 550, as a real server refuses an unknown user.
"""

import asyncio
import json
import logging
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

logins = []

# aiosmtpd logs a warning about its own use of a deprecated attribute on
# every AUTH; errors still show.
logging.getLogger("mail.log").setLevel(logging.ERROR)


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == "refused@example.com":
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        print(
            json.dumps(
                {
                    "from": envelope.mail_from,
                    "to": envelope.rcpt_tos,
                    "data": envelope.content.decode("utf-8", "replace"),
                    "logins": logins,
                }
            ),
            flush=True,
        )
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    login = auth_data.login.decode()
    password = auth_data.password.decode()
    logins.append({"login": login, "password": password})
    # handled=False: aiosmtpd then answers 535 itself instead of staying silent.
    return AuthResult(success=(login, password) == ("berth", "pa:ss@word"), handled=False)


async def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "plain"
    context = None
    if mode != "plain":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            Handler(),
            authenticator=authenticator,
            # Plain mode accepts AUTH without TLS, STARTTLS mode insists on it.
            # With implicit TLS aiosmtpd cannot tell the socket is encrypted.
            auth_require_tls=(mode == "starttls"),
            tls_context=context if mode == "starttls" else None,
            require_starttls=(mode == "starttls"),
        ),
        "127.0.0.1",
        0,
        ssl=context if mode == "implicit-tls" else None,
    )
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await server.serve_forever()


asyncio.run(main())
