#!/usr/bin/env python3
"""An SMTP sink that offers STARTTLS, for the email receiver test.

Usage: smtp_starttls_sink.py CERT KEY

Prints the port it listens on (127.0.0.1), then one JSON line per received
message: whether the session was under TLS when it authenticated and sent,
the AUTH line, the envelope and the DATA text. Before STARTTLS it offers
only STARTTLS; after it, AUTH PLAIN LOGIN.
"""

import json
import socket
import ssl
import sys
import threading


def session(conn, context):
    state = {"tls": False, "auth": "", "from": "", "to": [], "data": ""}
    reader = conn.makefile("rb")

    def send(text):
        conn.sendall(text.encode())

    send("220 sink ESMTP\r\n")
    while True:
        line = reader.readline()
        if not line:
            return
        text = line.decode().rstrip("\r\n")
        upper = text.upper()
        if upper.startswith("EHLO"):
            if state["tls"]:
                send("250-sink\r\n250 AUTH PLAIN LOGIN\r\n")
            else:
                send("250-sink\r\n250 STARTTLS\r\n")
        elif upper == "STARTTLS":
            send("220 go ahead\r\n")
            conn = context.wrap_socket(conn, server_side=True)
            reader = conn.makefile("rb")
            state["tls"] = True
        elif upper.startswith("AUTH"):
            state["auth"] = text
            state["auth_tls"] = state["tls"]
            send("235 ok\r\n")
        elif upper.startswith("MAIL FROM:"):
            state["from"] = text[10:]
            send("250 ok\r\n")
        elif upper.startswith("RCPT TO:"):
            state["to"].append(text[8:])
            send("250 ok\r\n")
        elif upper == "DATA":
            send("354 go\r\n")
            lines = []
            while True:
                data_line = reader.readline().decode().rstrip("\r\n")
                if data_line == ".":
                    break
                lines.append(data_line)
            state["data"] = "\n".join(lines)
            print(json.dumps(state), flush=True)
            send("250 queued\r\n")
        elif upper == "QUIT":
            send("221 bye\r\n")
            return
        else:
            send("250 ok\r\n")


def main():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=session, args=(conn, context), daemon=True).start()


if __name__ == "__main__":
    main()
